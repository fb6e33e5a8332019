// The front's micro-cache ([cache]): GET and HEAD responses the app marks cacheable are kept in
// memory and answered by the front itself, without a worker slot. What is stored, for how long
// and for whom follows RFC 9111 (HTTP Caching) for a shared cache, with RFC 5861's
// stale-if-error; the behaviour around it follows nginx's proxy cache (X-Cache-Status as
// $upstream_cache_status, proxy_cache_lock for concurrent misses, proxy_cache_use_stale).
//
//   * Cacheable: a GET (a HEAD is answered from a GET's entry, never stored) with no body, whose
//     response is 200, 301 or 404 and fresh: s-maxage, else max-age, else Expires − Date
//     (RFC 9111 §4.2.1), less its Age; or default_ttl for a path under one of `paths` (200 and
//     301 only) when the response gives no freshness at all.
//   * Never stored: Cache-Control private, no-store or no-cache (no revalidation here), a
//     Set-Cookie, Vary: *, or a body above max_entry_size.
//   * A request with Authorization or Cookie is answered only from an entry stored as `public`,
//     and its own response is stored only when `public` (RFC 9111 §3.5, applied to Cookie too);
//     a request with Cache-Control: no-cache (or Pragma: no-cache) is not looked up but may store.
//   * Key: the scheme (X-Forwarded-Proto as the worker gets it), Host, target (path and
//     query) and the request's values of the headers the stored response names in Vary; the
//     method is not part of it.
//   * Concurrent misses of one key: the first fills, the others wait (up to request_timeout, at
//     most kMaxFillWaiters) and are answered from the entry, or go to the app themselves if none
//     lands (nginx's proxy_cache_lock).
//   * Bounded in bytes (key + headers + body + a fixed overhead per entry) and in entries; the
//     least recently used entry goes first. set_capacity() may shrink it at run time.
//
// Thread-safe: one mutex, held for map and list operations only; entries are immutable and
// shared, so a hit is written to its client outside the lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>

#include "model/config.hpp"
#include "model/snapshot.hpp"
#include "server/cache_stats.hpp"

namespace tuner::server {

namespace cache {

namespace http = boost::beast::http;

// X-Cache-Status, as nginx's $upstream_cache_status.
enum class Status { hit, miss, expired, stale, bypass };
std::string_view to_string(Status status);

inline constexpr std::string_view kStatusHeader = "X-Cache-Status";
// Waiters on one fill, and fills in flight: beyond, a request goes to the app uncollapsed.
inline constexpr std::size_t kMaxFillWaiters = 1024;
inline constexpr std::size_t kMaxFills = 4096;
// What an entry costs beyond its strings (the list node, the map node, the control block).
inline constexpr std::size_t kEntryOverhead = 256;

// ---- pure functions -------------------------------------------------------------------------

// Cache-Control directives (RFC 9111 §5.2), from every Cache-Control line joined by ", ".
struct CacheControl {
    bool no_store = false;
    bool no_cache = false;  // with or without a field list
    bool is_private = false;
    bool is_public = false;
    bool must_revalidate = false;  // or proxy-revalidate: never served stale
    std::optional<std::int64_t> max_age;
    std::optional<std::int64_t> s_maxage;
    std::optional<std::int64_t> stale_if_error;  // RFC 5861
};
CacheControl parse_cache_control(std::string_view value);
// Every line of `field` in `fields`, joined with ", ".
std::string joined(const http::fields& fields, http::field field);

// An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms) as
// seconds since the epoch; nullopt when it is none of them.
std::optional<std::int64_t> parse_http_date(std::string_view text);

// The header names of a Vary value, lower case, in order; nullopt for "*".
std::optional<std::vector<std::string>> vary_names(std::string_view value);

// What the cache may do with a request.
struct RequestPolicy {
    bool cacheable = false;    // GET or HEAD without a body: false answers BYPASS
    bool lookup = false;       // may be answered from an entry
    bool fill = false;         // a miss fills (and collapses others onto it): GETs only
    bool store = false;        // its response may be stored (GETs, not a Range)
    bool credentials = false;  // Authorization or Cookie: only `public` entries and responses
};
RequestPolicy request_policy(const http::fields& request, http::verb method, bool has_body);

// Whether a response may be stored, and its timings.
struct Storability {
    bool store = false;
    std::string why_not;       // when not stored, for the debug log and the tests
    Duration ttl{0};           // freshness lifetime
    Duration age{0};           // its Age when received
    Duration stale_window{0};  // how long after expiry it may answer an upstream error
    bool is_public = false;
    std::vector<std::string> vary;
};
// `now_s`: seconds since the epoch (for Expires against a missing Date).
Storability response_storability(int status, const http::fields& response, std::string_view path,
                                 bool credentials, const CacheConfig& config, std::int64_t now_s);

// Responses that let an expired entry answer instead (RFC 5861 §4: 500, 502, 503, 504).
bool is_error_status(int status);

// Scheme (the X-Forwarded-Proto the worker gets: a proxy's "https", else "http"), host and
// target: the part of every key that does not depend on Vary (nginx's default proxy_cache_key
// is $scheme$proxy_host$request_uri). The scheme keeps an app's redirect to https, answered to
// plain http, from being served to https clients.
std::string primary_key(std::string_view host, std::string_view target,
                        std::string_view scheme = "http");
// The primary key with the request's values of the `vary` headers.
std::string variant_key(const std::string& primary, const std::vector<std::string>& vary,
                        const http::fields& request);

// One stored response.
struct Entry {
    std::string key;
    std::string primary;
    int status = 0;
    std::string fields;  // "Name: value\r\n" lines, Content-Length included, no hop-by-hop
    std::string body;
    std::vector<std::string> vary;
    Clock::time_point stored{};
    Duration ttl{0};
    Duration age{0};
    Duration stale_window{0};
    bool is_public = false;

    [[nodiscard]] std::size_t bytes() const {
        std::size_t n =
            key.size() * 2 + primary.size() + fields.size() + body.size() + kEntryOverhead;
        for (const auto& v : vary) n += v.size();
        return n;
    }
    [[nodiscard]] Clock::time_point expires() const { return stored + ttl - age; }
    [[nodiscard]] bool fresh(Clock::time_point now) const { return now < expires(); }
    [[nodiscard]] bool stale_usable(Clock::time_point now) const {
        return now < expires() + stale_window;
    }
    // Age to send (RFC 9111 §4.2.3, whole seconds).
    [[nodiscard]] std::int64_t age_at(Clock::time_point now) const;
};

// The entry built from a response header (hop-by-hop fields already removed) and its body.
std::shared_ptr<const Entry> make_entry(std::string key, std::string primary, int status,
                                        const http::fields& response, std::string body,
                                        const Storability& how, Clock::time_point now);

// The status line and header of an answer from `entry`, with Age, X-Cache-Status and the
// client's Connection, up to and including the blank line. `fields`: lines to send instead of
// the entry's own (its header as compression set it for this client).
std::string response_head(const Entry& entry, Status status, unsigned version, bool keep_alive,
                          Clock::time_point now, std::optional<std::string_view> fields = {});

// An entry's "Name: value\r\n" lines: the values of `name` (case-insensitive), joined with ",";
// nullopt when there is none.
std::optional<std::string> field_value(std::string_view fields, std::string_view name);
// The lines into `out` (each appended as it is), and back.
void parse_fields(std::string_view fields, http::fields& out);
std::string fields_text(const http::fields& fields);

}  // namespace cache

class MicroCache {
public:
    using Entry = cache::Entry;
    using Fields = boost::beast::http::fields;
    using EntryPtr = std::shared_ptr<const Entry>;

    // A request waiting for another's fill: woken (any thread) when it lands or is given up.
    struct Waiter {
        std::function<void()> wake;  // set by arm(); called outside the lock
        EntryPtr result;
        bool done = false;
    };
    struct Fill {
        std::string key;
        std::vector<std::shared_ptr<Waiter>> waiters;
    };

    // Completes a fill exactly once: with an entry, or abandoned when destroyed.
    class FillGuard {
    public:
        FillGuard() = default;
        FillGuard(MicroCache* cache, std::shared_ptr<Fill> fill)
            : cache_(cache), fill_(std::move(fill)) {}
        FillGuard(FillGuard&& o) noexcept : cache_(o.cache_), fill_(std::move(o.fill_)) {}
        FillGuard& operator=(FillGuard&& o) noexcept {
            if (this != &o) {
                complete(nullptr, false);
                cache_ = o.cache_;
                fill_ = std::move(o.fill_);
            }
            return *this;
        }
        FillGuard(const FillGuard&) = delete;
        FillGuard& operator=(const FillGuard&) = delete;
        ~FillGuard() { complete(nullptr, false); }
        explicit operator bool() const { return fill_ != nullptr; }
        // Stores `entry` (when not null) and wakes the waiters; `invalidate`: the app answered
        // with something not storable, so an older entry of this key goes.
        void complete(EntryPtr entry, bool invalidate) {
            if (!fill_) return;
            auto fill = std::move(fill_);
            fill_.reset();
            cache_->complete(fill, std::move(entry), invalidate);
        }

    private:
        MicroCache* cache_ = nullptr;
        std::shared_ptr<Fill> fill_;
    };

    struct Lookup {
        cache::Status status = cache::Status::miss;
        EntryPtr entry;                // fresh: answer with it (HIT)
        EntryPtr stale;                // expired, but may answer if the app fails (STALE)
        FillGuard fill;                // this request fills the key
        std::shared_ptr<Waiter> wait;  // another request fills it: arm() and wait
    };

    explicit MicroCache(const CacheConfig& config);

    [[nodiscard]] bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
    // A reload: size and max_entries (entries beyond are evicted at once).
    void configure(const CacheConfig& config);
    // The memory policy's knob: at most `bytes` (never above cache.size); evicts at once.
    void set_capacity(std::uint64_t bytes);

    // Looks `request` up (`primary`: cache::primary_key of it) under `policy`.
    Lookup lookup(const std::string& primary, const Fields& request,
                  const cache::RequestPolicy& policy, Clock::time_point now);
    // Whether `entry` answers `request` (its Vary values match): for a waiter whose filler
    // had another variant.
    [[nodiscard]] static bool matches(const Entry& entry, const Fields& request);
    // Stores an entry outside a fill (a no-cache request, a `public` answer to credentials).
    void store(EntryPtr entry);
    // Sets `waiter`'s wake-up; false when its fill is already done (no wait needed).
    bool arm(const std::shared_ptr<Waiter>& waiter, std::function<void()> wake);
    // The waiter's result after its wake-up or its timeout (and off the fill's list).
    EntryPtr finish_wait(const std::shared_ptr<Waiter>& waiter);

    // One response that carried X-Cache-Status: `collapsed` for a hit that waited for a fill.
    void count(cache::Status status, bool collapsed = false);
    void clear();
    [[nodiscard]] CacheStats stats() const;

private:
    void complete(const std::shared_ptr<Fill>& fill, EntryPtr entry, bool invalidate);
    void insert_locked(EntryPtr entry);
    void erase_locked(const std::string& key);
    void evict_locked();
    std::vector<std::string> vary_of_locked(const std::string& primary) const;

    struct Slot {
        EntryPtr entry;
        std::list<std::string>::iterator lru;
    };
    struct VaryInfo {
        std::vector<std::string> names;
        std::size_t entries = 0;  // entries under this primary key
    };

    std::atomic<bool> enabled_{false};
    mutable std::mutex mutex_;
    std::uint64_t size_limit_ = 0;  // cache.size
    std::uint64_t capacity_ = 0;    // ≤ size_limit_
    std::uint64_t max_entries_ = 0;
    std::uint64_t bytes_ = 0;
    std::list<std::string> lru_;  // keys, most recently used first
    std::unordered_map<std::string, Slot> entries_;
    std::unordered_map<std::string, VaryInfo> vary_;  // by primary key; bounded by entries_
    std::unordered_map<std::string, std::shared_ptr<Fill>> fills_;
    CacheStats counters_;
};

}  // namespace tuner::server
