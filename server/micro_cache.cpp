// The front's micro-cache (see micro_cache.hpp).
#include "server/micro_cache.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <limits>

#include <boost/beast/http/status.hpp>

namespace tuner::server {

namespace cache {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// delta-seconds (RFC 9111 §1.2.2): digits only; a value too large for 31 bits is 2^31.
std::optional<std::int64_t> delta_seconds(std::string_view text) {
    if (text.empty()) return std::nullopt;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
    }
    std::int64_t n = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    constexpr std::int64_t kMax = 2147483648;
    if (ec == std::errc::result_out_of_range || n > kMax) return kMax;
    if (ec != std::errc{} || p != text.data() + text.size()) return std::nullopt;
    return n;
}

// Splits a comma-separated list, leaving commas inside quoted strings alone.
std::vector<std::string_view> split_list(std::string_view value) {
    std::vector<std::string_view> items;
    bool quoted = false;
    std::size_t start = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        if (quoted && c == '\\') {
            ++i;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (c == ',' && !quoted) {
            items.push_back(trim(value.substr(start, i - start)));
            start = i + 1;
        }
    }
    items.push_back(trim(value.substr(start)));
    return items;
}

bool path_under(std::string_view path, const std::vector<std::string>& prefixes) {
    return std::any_of(prefixes.begin(), prefixes.end(),
                       [&](const std::string& prefix) { return path.rfind(prefix, 0) == 0; });
}

}  // namespace

std::string_view to_string(Status status) {
    switch (status) {
        case Status::hit:
            return "HIT";
        case Status::miss:
            return "MISS";
        case Status::expired:
            return "EXPIRED";
        case Status::stale:
            return "STALE";
        case Status::bypass:
            return "BYPASS";
    }
    return "MISS";
}

CacheControl parse_cache_control(std::string_view value) {
    CacheControl cc;
    for (const auto item : split_list(value)) {
        if (item.empty()) continue;
        const auto eq = item.find('=');
        const std::string name = lower(trim(item.substr(0, eq)));
        std::string_view arg = eq == std::string_view::npos ? "" : trim(item.substr(eq + 1));
        if (arg.size() >= 2 && arg.front() == '"' && arg.back() == '"')
            arg = arg.substr(1, arg.size() - 2);
        if (name == "no-store") {
            cc.no_store = true;
        } else if (name == "no-cache") {
            cc.no_cache = true;
        } else if (name == "private") {
            cc.is_private = true;
        } else if (name == "public") {
            cc.is_public = true;
        } else if (name == "must-revalidate" || name == "proxy-revalidate") {
            cc.must_revalidate = true;
        } else if (name == "max-age") {
            // An invalid value makes the response stale (RFC 9111 §4.2.1).
            cc.max_age = delta_seconds(arg).value_or(0);
        } else if (name == "s-maxage") {
            cc.s_maxage = delta_seconds(arg).value_or(0);
        } else if (name == "stale-if-error") {
            if (auto n = delta_seconds(arg)) cc.stale_if_error = n;
        }
    }
    return cc;
}

std::string joined(const http::fields& fields, http::field field) {
    std::string out;
    const auto range = fields.equal_range(field);
    for (auto it = range.first; it != range.second; ++it) {
        if (!out.empty()) out += ", ";
        out.append(it->value().data(), it->value().size());
    }
    return out;
}

std::optional<std::int64_t> parse_http_date(std::string_view text) {
    text = trim(text);
    if (text.empty() || text.size() > 64) return std::nullopt;
    const std::string s(text);
    // IMF-fixdate, RFC 850, asctime (RFC 9110 §5.6.7).
    for (const char* format :
         {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
        std::tm tm{};
        const char* end = ::strptime(s.c_str(), format, &tm);
        if (end == nullptr || *end != '\0') continue;
        const std::time_t t = ::timegm(&tm);
        if (t == static_cast<std::time_t>(-1)) continue;
        return static_cast<std::int64_t>(t);
    }
    return std::nullopt;
}

std::optional<std::vector<std::string>> vary_names(std::string_view value) {
    std::vector<std::string> names;
    for (const auto item : split_list(value)) {
        if (item.empty()) continue;
        if (item == "*") return std::nullopt;
        auto name = lower(item);
        if (std::find(names.begin(), names.end(), name) == names.end())
            names.push_back(std::move(name));
    }
    return names;
}

RequestPolicy request_policy(const http::fields& request, http::verb method, bool has_body) {
    RequestPolicy p;
    p.cacheable = (method == http::verb::get || method == http::verb::head) && !has_body;
    if (!p.cacheable) return p;
    p.credentials =
        request.count(http::field::authorization) != 0 || request.count(http::field::cookie) != 0;
    const auto cc_text = joined(request, http::field::cache_control);
    const auto cc = parse_cache_control(cc_text);
    // Pragma: no-cache counts only without Cache-Control (RFC 9111 §5.4).
    const bool pragma_no_cache =
        cc_text.empty() && parse_cache_control(joined(request, http::field::pragma)).no_cache;
    p.lookup = !cc.no_cache && !pragma_no_cache;
    p.store = method == http::verb::get && request.count(http::field::range) == 0 && !cc.no_store;
    p.fill = p.store && p.lookup && !p.credentials;
    return p;
}

Storability response_storability(int status, const http::fields& response, std::string_view path,
                                 bool credentials, const CacheConfig& config, std::int64_t now_s) {
    Storability s;
    auto no = [&s](std::string why) {
        s.store = false;
        s.why_not = std::move(why);
        return s;
    };
    if (status != 200 && status != 301 && status != 404)
        return no("status " + std::to_string(status));
    const auto cc = parse_cache_control(joined(response, http::field::cache_control));
    if (cc.no_store) return no("Cache-Control: no-store");
    if (cc.is_private) return no("Cache-Control: private");
    if (cc.no_cache) return no("Cache-Control: no-cache");
    if (response.count(http::field::set_cookie) != 0) return no("Set-Cookie");
    const auto vary = vary_names(joined(response, http::field::vary));
    if (!vary) return no("Vary: *");
    if (credentials && !cc.is_public) return no("credentials without Cache-Control: public");

    // Freshness lifetime (RFC 9111 §4.2.1): s-maxage, max-age, Expires − Date, else the default.
    std::optional<std::int64_t> lifetime_s;
    if (cc.s_maxage) {
        lifetime_s = cc.s_maxage;
    } else if (cc.max_age) {
        lifetime_s = cc.max_age;
    } else if (response.count(http::field::expires) != 0) {
        // An Expires that is not a date means "already expired" (RFC 9111 §5.3).
        const auto expires = parse_http_date(joined(response, http::field::expires));
        const auto date = parse_http_date(joined(response, http::field::date));
        lifetime_s = expires ? std::max<std::int64_t>(0, *expires - date.value_or(now_s)) : 0;
    }
    if (!lifetime_s) {
        if (config.default_ttl.count() > 0 && (status == 200 || status == 301) &&
            path_under(path, config.paths)) {
            s.ttl = config.default_ttl;
        } else {
            return no("no freshness (Cache-Control max-age, Expires) and no default_ttl");
        }
    } else {
        s.ttl = std::chrono::seconds(*lifetime_s);
    }
    if (auto age = delta_seconds(trim(joined(response, http::field::age))))
        s.age = std::chrono::seconds(*age);
    if (s.ttl <= s.age) return no("not fresh (lifetime ≤ Age)");
    // s-maxage implies proxy-revalidate (RFC 9111 §5.2.2.10): never served stale.
    if (!cc.must_revalidate && !cc.s_maxage) {
        s.stale_window = cc.stale_if_error ? Duration(std::chrono::seconds(*cc.stale_if_error))
                                           : config.stale_if_error;
    }
    s.is_public = cc.is_public;
    s.vary = std::move(*vary);
    s.store = true;
    return s;
}

bool is_error_status(int status) {
    return status == 500 || status == 502 || status == 503 || status == 504;
}

std::string primary_key(std::string_view host, std::string_view target, std::string_view scheme) {
    std::string key = lower(trim(scheme.empty() ? "http" : scheme));
    key += '\n';
    key += lower(host);
    key += '\n';
    key += target;
    return key;
}

std::string variant_key(const std::string& primary, const std::vector<std::string>& vary,
                        const http::fields& request) {
    std::string key = primary;
    for (const auto& name : vary) {
        key += '\n';
        key += name;
        key += ':';
        const auto range = request.equal_range(name);
        bool first = true;
        for (auto it = range.first; it != range.second; ++it) {
            if (!first) key += ", ";
            first = false;
            key.append(it->value().data(), it->value().size());
        }
    }
    return key;
}

std::int64_t Entry::age_at(Clock::time_point now) const {
    const auto resident = std::chrono::duration_cast<std::chrono::seconds>(now - stored);
    return std::chrono::duration_cast<std::chrono::seconds>(age).count() +
           std::max<std::int64_t>(0, resident.count());
}

std::shared_ptr<const Entry> make_entry(std::string key, std::string primary, int status,
                                        const http::fields& response, std::string body,
                                        const Storability& how, Clock::time_point now) {
    auto entry = std::make_shared<Entry>();
    entry->key = std::move(key);
    entry->primary = std::move(primary);
    entry->status = status;
    for (const auto& field : response) {
        const auto name = field.name();
        if (name == http::field::content_length || name == http::field::transfer_encoding ||
            name == http::field::age || name == http::field::connection ||
            name == http::field::keep_alive ||
            boost::beast::iequals(field.name_string(), kStatusHeader))
            continue;
        entry->fields.append(field.name_string().data(), field.name_string().size());
        entry->fields += ": ";
        entry->fields.append(field.value().data(), field.value().size());
        entry->fields += "\r\n";
    }
    entry->fields += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    entry->body = std::move(body);
    entry->vary = how.vary;
    entry->stored = now;
    entry->ttl = how.ttl;
    entry->age = how.age;
    entry->stale_window = how.stale_window;
    entry->is_public = how.is_public;
    return entry;
}

std::string response_head(const Entry& entry, Status status, unsigned version, bool keep_alive,
                          Clock::time_point now, std::optional<std::string_view> fields) {
    const std::string_view lines = fields ? *fields : std::string_view(entry.fields);
    std::string head;
    head.reserve(lines.size() + 96);
    head += version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
    head += std::to_string(entry.status);
    head += ' ';
    const auto reason = http::obsolete_reason(static_cast<http::status>(entry.status));
    head.append(reason.data(), reason.size());
    head += "\r\n";
    head += lines;
    head += "Age: " + std::to_string(entry.age_at(now)) + "\r\n";
    head += kStatusHeader;
    head += ": ";
    head += to_string(status);
    head += "\r\n";
    if (version >= 11 && !keep_alive) head += "Connection: close\r\n";
    if (version < 11 && keep_alive) head += "Connection: keep-alive\r\n";
    head += "\r\n";
    return head;
}

namespace {

// Calls each(name, value) for every "Name: value\r\n" line of an entry's fields.
template <class Each>
void for_each_line(std::string_view fields, Each each) {
    while (!fields.empty()) {
        const auto end = fields.find("\r\n");
        const auto line = fields.substr(0, end);
        fields = end == std::string_view::npos ? std::string_view{} : fields.substr(end + 2);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        each(line.substr(0, colon), trim(line.substr(colon + 1)));
    }
}

}  // namespace

std::optional<std::string> field_value(std::string_view fields, std::string_view name) {
    std::optional<std::string> out;
    for_each_line(fields, [&](std::string_view n, std::string_view value) {
        if (!boost::beast::iequals(n, name)) return;
        if (out) {
            *out += ',';
        } else {
            out.emplace();
        }
        out->append(value.data(), value.size());
    });
    return out;
}

void parse_fields(std::string_view fields, http::fields& out) {
    for_each_line(fields,
                  [&](std::string_view name, std::string_view value) { out.insert(name, value); });
}

std::string fields_text(const http::fields& fields) {
    std::string out;
    for (const auto& field : fields) {
        out.append(field.name_string().data(), field.name_string().size());
        out += ": ";
        out.append(field.value().data(), field.value().size());
        out += "\r\n";
    }
    return out;
}

}  // namespace cache

// ---- the store ------------------------------------------------------------------------------

MicroCache::MicroCache(const CacheConfig& config) {
    configure(config);
}

void MicroCache::configure(const CacheConfig& config) {
    std::lock_guard lock(mutex_);
    size_limit_ = config.size_bytes;
    capacity_ = size_limit_;
    max_entries_ = std::max<std::uint64_t>(config.max_entries, 1);
    enabled_ = size_limit_ > 0;
    evict_locked();
}

void MicroCache::set_capacity(std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    capacity_ = std::min(bytes, size_limit_);
    evict_locked();
}

std::vector<std::string> MicroCache::vary_of_locked(const std::string& primary) const {
    const auto it = vary_.find(primary);
    return it == vary_.end() ? std::vector<std::string>{} : it->second.names;
}

MicroCache::Lookup MicroCache::lookup(const std::string& primary, const Fields& request,
                                      const cache::RequestPolicy& policy, Clock::time_point now) {
    using cache::Status;
    Lookup out;
    std::lock_guard lock(mutex_);
    const std::string key = cache::variant_key(primary, vary_of_locked(primary), request);
    bool had_entry = false;
    if (const auto it = entries_.find(key); it != entries_.end()) {
        const EntryPtr& entry = it->second.entry;
        const bool allowed = !policy.credentials || entry->is_public;
        if (entry->fresh(now)) {
            if (policy.lookup && allowed) {
                lru_.splice(lru_.begin(), lru_, it->second.lru);
                out.status = Status::hit;
                out.entry = entry;
                return out;
            }
        } else {
            had_entry = true;
            if (entry->stale_usable(now)) {
                if (allowed) out.stale = entry;
            } else {
                erase_locked(key);
            }
        }
    }
    if (!policy.lookup || policy.credentials) {
        out.status = Status::bypass;
        return out;
    }
    out.status = had_entry ? Status::expired : Status::miss;
    if (!policy.fill) return out;
    if (const auto f = fills_.find(key); f != fills_.end()) {
        if (f->second->waiters.size() < cache::kMaxFillWaiters) {
            out.wait = std::make_shared<Waiter>();
            f->second->waiters.push_back(out.wait);
        }
    } else if (fills_.size() < cache::kMaxFills) {
        auto fill = std::make_shared<Fill>();
        fill->key = key;
        fills_.emplace(key, fill);
        out.fill = FillGuard(this, std::move(fill));
    }
    return out;
}

bool MicroCache::matches(const Entry& entry, const Fields& request) {
    return cache::variant_key(entry.primary, entry.vary, request) == entry.key;
}

void MicroCache::store(EntryPtr entry) {
    std::lock_guard lock(mutex_);
    insert_locked(std::move(entry));
}

void MicroCache::complete(const std::shared_ptr<Fill>& fill, EntryPtr entry, bool invalidate) {
    std::vector<std::function<void()>> wakes;
    {
        std::lock_guard lock(mutex_);
        if (const auto it = fills_.find(fill->key); it != fills_.end() && it->second == fill)
            fills_.erase(it);
        if (entry) {
            insert_locked(entry);
        } else if (invalidate) {
            erase_locked(fill->key);
        }
        for (auto& waiter : fill->waiters) {
            if (waiter->done) continue;  // gave up waiting
            waiter->result = entry;
            waiter->done = true;
            if (waiter->wake) wakes.push_back(std::move(waiter->wake));
            waiter->wake = nullptr;
        }
        fill->waiters.clear();
    }
    for (auto& wake : wakes) wake();
}

bool MicroCache::arm(const std::shared_ptr<Waiter>& waiter, std::function<void()> wake) {
    std::lock_guard lock(mutex_);
    if (waiter->done) return false;
    waiter->wake = std::move(wake);
    return true;
}

MicroCache::EntryPtr MicroCache::finish_wait(const std::shared_ptr<Waiter>& waiter) {
    std::lock_guard lock(mutex_);
    waiter->done = true;  // a fill that lands later leaves it alone
    waiter->wake = nullptr;
    return waiter->result;
}

void MicroCache::insert_locked(EntryPtr entry) {
    if (!entry || !enabled_ || entry->bytes() > capacity_) return;
    erase_locked(entry->key);
    lru_.push_front(entry->key);
    bytes_ += entry->bytes();
    auto& vary = vary_[entry->primary];
    vary.names = entry->vary;
    ++vary.entries;
    const std::string key = entry->key;
    entries_.emplace(key, Slot{std::move(entry), lru_.begin()});
    ++counters_.stores;
    evict_locked();
}

void MicroCache::erase_locked(const std::string& key) {
    const auto it = entries_.find(key);
    if (it == entries_.end()) return;
    const EntryPtr entry = it->second.entry;
    bytes_ -= entry->bytes();
    lru_.erase(it->second.lru);
    entries_.erase(it);
    if (const auto v = vary_.find(entry->primary); v != vary_.end() && --v->second.entries == 0)
        vary_.erase(v);
}

void MicroCache::evict_locked() {
    while (!lru_.empty() && (bytes_ > capacity_ || entries_.size() > max_entries_)) {
        const std::string key = lru_.back();
        erase_locked(key);
        ++counters_.evictions;
    }
}

void MicroCache::count(cache::Status status, bool collapsed) {
    std::lock_guard lock(mutex_);
    switch (status) {
        case cache::Status::hit:
            ++counters_.hits;
            if (collapsed) ++counters_.collapsed;
            break;
        case cache::Status::miss:
            ++counters_.misses;
            break;
        case cache::Status::expired:
            ++counters_.expired;
            break;
        case cache::Status::stale:
            ++counters_.stale;
            break;
        case cache::Status::bypass:
            ++counters_.bypasses;
            break;
    }
}

void MicroCache::clear() {
    std::lock_guard lock(mutex_);
    entries_.clear();
    lru_.clear();
    vary_.clear();
    bytes_ = 0;
}

CacheStats MicroCache::stats() const {
    std::lock_guard lock(mutex_);
    CacheStats s = counters_;
    s.enabled = enabled_;
    s.entries = entries_.size();
    s.bytes = bytes_;
    s.capacity = capacity_;
    s.max_entries = max_entries_;
    s.fills_in_flight = fills_.size();
    return s;
}

}  // namespace tuner::server
