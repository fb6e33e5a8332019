#!/bin/bash
# The .deb's tests (tests/package/CMakeLists.txt runs one step per ctest entry):
#   build      cpack -G DEB into the test's own directory (the fixture every other step uses)
#   contents   dpkg-deb -c lists exactly the expected files; -I/-e: control fields, conffiles,
#              maintainer scripts; binaries stripped; the unit made for /usr
#   lintian    no error or warning but the overridden ones (packaging/debian/lintian-overrides)
#   unit       systemd-analyze security --offline on the build tree's unit: exposure <= 1.8
#   prefix     cmake --install --prefix P: the unit made for P, the config kept when it exists
#   install    dpkg -i (root only; the fixture whose cleanup is purge)
#   installed  the tunerd user, tunerd --check-config on the installed config (as root and as
#              tunerd), a start of the installed tunerd as tunerd with that config (the demo app
#              answers), systemd-analyze verify and security on the installed unit(s)
#   purge      dpkg --purge; files, state, user and group are gone; restores what install set aside
# Exit 77 = skipped (printed why). Needs: BUILD_DIR SOURCE_DIR OUT_DIR VERSION UNITS (space-separated
# unit names) in the environment.
set -u
step=${1:?step}
: "${BUILD_DIR:?}" "${SOURCE_DIR:?}" "${OUT_DIR:?}" "${VERSION:?}" "${UNITS:?}"
DEB_DIR=$OUT_DIR/deb
SAVED_DIR=$OUT_DIR/saved
MAX_EXPOSURE=1.8
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
finish() {
  if [ "$failures" -ne 0 ]; then echo "$step: $failures check(s) failed"; exit 1; fi
  echo "$step: ok"; exit 0
}
need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: $step needs root (dpkg -i/--purge on a throwaway machine; CI runs as root)"
    exit 77
  fi
}
the_deb() {
  local deb
  deb=$(find "$DEB_DIR" -maxdepth 1 -name "tunerd_${VERSION}_*.deb" 2>/dev/null | head -n 1)
  if [ -z "$deb" ]; then echo "FAIL: no tunerd_${VERSION}_*.deb in $DEB_DIR (Package.Build)"; exit 1; fi
  echo "$deb"
}
# What install set aside (/var/lib/tunerd, /etc/tunerd made by hand) goes back where it was.
put_back() {
  local saved orig
  for saved in "$SAVED_DIR"/*; do
    [ -e "$saved" ] || continue
    orig=$(basename "$saved" | tr _ /)
    if [ -e "$orig" ]; then fail "cannot put back $orig: it exists (kept in $saved)"; continue; fi
    mv "$saved" "$orig" && echo "put back $orig"
  done
}
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' tunerd 2>/dev/null)" = installed ]; }
# dpkg takes its lock or fails at once; another apt or dpkg on the machine waits it out.
dpkg_locked() {
  local tries=0 out
  while :; do
    out=$(dpkg "$@" 2>&1) && { echo "$out"; return 0; }
    if echo "$out" | grep -Eq "is locked by another process|lock-frontend|database is locked" &&
      [ $tries -lt 60 ]; then
      tries=$((tries + 1)); sleep 1; continue
    fi
    echo "$out"; return 1
  done
}
# The exposure score of `systemd-analyze security --offline=true UNIT`, checked against the bound.
check_exposure() {
  local unit=$1 out score
  out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)
  score=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  if [ -z "$score" ]; then
    echo "$out" | tail -n 20
    fail "no exposure level from systemd-analyze security --offline=true $unit"
    return
  fi
  echo "exposure $(basename "$unit"): $score (bound $MAX_EXPOSURE)"
  if ! awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
    echo "$out" | grep -v '^✓' | tail -n 40
    fail "exposure $score > $MAX_EXPOSURE"
  fi
}

# The installed tunerd started as the unit starts it: as tunerd, with the installed config, with
# $STATE_DIRECTORY and $RUNTIME_DIRECTORY set (a fresh runtime directory), in a network namespace
# of its own, so that the config's 127.0.0.1:8080 and :9464 clash with nothing on the machine.
# Passes when the demo app answers GET / with 200 and tunerd stops cleanly on SIGTERM.
start_installed() {
  local run log
  run=$(mktemp -d /run/tunerd-test.XXXXXX) && chown tunerd:tunerd "$run" && chmod 0700 "$run"
  log=$OUT_DIR/installed-tunerd.log
  unshare --net bash -c '
    ip link set lo up || exit 1
    setpriv --reuid=tunerd --regid=tunerd --init-groups \
      env STATE_DIRECTORY=/var/lib/tunerd RUNTIME_DIRECTORY="$1" \
      /usr/bin/tunerd --config /etc/tunerd/tunerd.toml >"$2" 2>&1 &
    pid=$!
    code=000
    for _ in $(seq 150); do
      code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 2 http://127.0.0.1:8080/)
      [ "$code" = 200 ] && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.1
    done
    echo "started: GET http://127.0.0.1:8080/ -> $code; /health: $(curl -s --max-time 2 http://127.0.0.1:9464/health | head -c 200)"
    kill -TERM $pid 2>/dev/null
    wait $pid
    status=$?
    echo "tunerd exited $status"
    [ "$code" = 200 ] && [ $status -eq 0 ]
  ' _ "$run" "$log"
  local rc=$?
  rm -rf "$run"
  if [ $rc -ne 0 ]; then
    tail -n 30 "$log"
    fail "the installed tunerd did not start and serve as the tunerd user with the installed config"
  fi
}

expected_files() {
  {
    echo ./etc/tunerd/tunerd.toml
    for u in $UNITS; do echo "./lib/systemd/system/$u"; done
    echo ./usr/bin/tunerctl
    echo ./usr/bin/tunerd
    echo ./usr/share/doc/tunerd/README.md
    echo ./usr/share/doc/tunerd/changelog.gz
    echo ./usr/share/doc/tunerd/copyright
    for d in "$SOURCE_DIR"/docs/*.md; do echo "./usr/share/doc/tunerd/docs/$(basename "$d")"; done
    echo ./usr/share/man/man1/tunerctl.1.gz
    echo ./usr/share/man/man8/tunerd.8.gz
    echo ./usr/share/tunerd/tunerd_preload.py
    if [ -f "$SOURCE_DIR/packaging/debian/lintian-overrides" ]; then
      echo ./usr/share/lintian/overrides/tunerd
    fi
  } | LC_ALL=C sort
}

case "$step" in
build)
  for b in tunerd tunerctl; do
    [ -x "$BUILD_DIR/tuner/$b" ] || { echo "FAIL: $BUILD_DIR/tuner/$b is not built"; exit 1; }
  done
  rm -rf "$DEB_DIR" && mkdir -p "$DEB_DIR"
  if ! (cd "$BUILD_DIR" && cpack -G DEB --config "$BUILD_DIR/CPackConfig.cmake" -B "$DEB_DIR"); then
    echo "FAIL: cpack -G DEB"; exit 1
  fi
  deb=$(the_deb) || { echo "$deb"; exit 1; }
  echo "built $deb ($(stat -c %s "$deb") bytes) in $SECONDS s"
  finish
  ;;

contents)
  deb=$(the_deb) || { echo "$deb"; exit 1; }
  listing=$(dpkg-deb -c "$deb") || { echo "FAIL: dpkg-deb -c"; exit 1; }
  echo "$listing"
  actual=$(echo "$listing" | awk '$1 ~ /^-/ { print $6 }' | LC_ALL=C sort)
  if ! diff <(expected_files) <(echo "$actual"); then
    fail "the files in the package differ from the expected ones (< expected, > packaged)"
  fi
  others=$(echo "$listing" | awk '$1 !~ /^[-d]/')
  [ -z "$others" ] || fail "links or special files in the package: $others"
  bad_owner=$(echo "$listing" | awk '$2 != "root/root"')
  [ -z "$bad_owner" ] || fail "not owned by root/root: $bad_owner"
  while read -r mode _ _ _ _ path; do
    case "$path" in
      ./usr/bin/*) want=-rwxr-xr-x ;;
      *) want=-rw-r--r-- ;;
    esac
    [ "$mode" = "$want" ] || fail "$path has mode $mode, not $want"
  done < <(echo "$listing" | awk '$1 ~ /^-/')

  info=$(dpkg-deb -I "$deb") || { echo "FAIL: dpkg-deb -I"; exit 1; }
  echo "$info"
  field() { dpkg-deb -f "$deb" "$1"; }
  [ "$(field Package)" = tunerd ] || fail "Package: $(field Package)"
  [ "$(field Version)" = "$VERSION" ] || fail "Version: $(field Version), not $VERSION"
  [ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture: $(field Architecture)"
  [ "$(field Section)" = httpd ] || fail "Section: $(field Section)"
  [ "$(field Priority)" = optional ] || fail "Priority: $(field Priority)"
  echo "$(field Maintainer)" | grep -Eq '^[^<]+ <[^@>]+@[^>]+>$' || fail "Maintainer: $(field Maintainer)"
  [ -n "$(field Description)" ] || fail "no Description"
  depends=$(field Depends)
  # adduser for postinst; the rest from dpkg-shlibdeps (the libraries both binaries link).
  for dep in adduser libc6 libstdc++6 libsqlite3-0; do
    echo ", $depends," | grep -Fq -e ", $dep " -e ", $dep," ||
      fail "Depends lacks $dep: $depends"
  done
  control=$OUT_DIR/control && rm -rf "$control" && dpkg-deb -e "$deb" "$control"
  [ "$(cat "$control/conffiles" 2>/dev/null)" = /etc/tunerd/tunerd.toml ] ||
    fail "conffiles: $(cat "$control/conffiles" 2>/dev/null)"
  for s in postinst prerm postrm; do
    [ -x "$control/$s" ] || fail "no executable $s"
    sh -n "$control/$s" || fail "$s: sh syntax"
  done
  grep -q 'adduser --system --group' "$control/postinst" || fail "postinst does not create the user"
  grep -q 'rm -rf /var/lib/tunerd' "$control/postrm" || fail "postrm purge keeps the state"
  [ -f "$control/md5sums" ] || fail "no md5sums"

  root=$OUT_DIR/root && rm -rf "$root" && dpkg-deb -x "$deb" "$root"
  for b in tunerd tunerctl; do
    if readelf -S "$root/usr/bin/$b" | grep -q '\.symtab'; then fail "/usr/bin/$b is not stripped"; fi
  done
  grep -qx 'ExecStart=/usr/bin/tunerd --config /etc/tunerd/tunerd.toml' \
    "$root/lib/systemd/system/tunerd.service" || fail "tunerd.service: ExecStart not made for /usr: $(grep ExecStart "$root/lib/systemd/system/tunerd.service")"
  if grep -n '@[A-Z_]*@' "$root"/lib/systemd/system/*; then fail "unsubstituted @VARIABLE@ in a unit"; fi
  cmp "$root/etc/tunerd/tunerd.toml" "$SOURCE_DIR/etc/tunerd.toml" ||
    fail "/etc/tunerd/tunerd.toml is not etc/tunerd.toml"
  gzip -t "$root/usr/share/doc/tunerd/changelog.gz" || fail "changelog.gz is no gzip file"
  # The manual pages name every command of tunerctl --help and every option of tunerd --help.
  for cmd in $("$BUILD_DIR/tuner/tunerctl" --help | sed -n 's/^  \([a-z]\+\).*/\1/p'); do
    zcat "$root/usr/share/man/man1/tunerctl.1.gz" | grep -q "^\.B $cmd\b" ||
      fail "tunerctl(1) does not describe the command $cmd"
  done
  for opt in $("$BUILD_DIR/tuner/tunerd" --help | grep -o -- '--[a-z-]\+' | sort -u); do
    zcat "$root/usr/share/man/man8/tunerd.8.gz" | grep -q -- "$(echo "$opt" | sed 's/-/\\\\-/g')" ||
      fail "tunerd(8) does not describe $opt"
  done
  zcat "$root/usr/share/doc/tunerd/changelog.gz" | head -n 1 | grep -q "^tunerd ($VERSION)" ||
    fail "the changelog's first entry is not $VERSION"
  finish
  ;;

lintian)
  deb=$(the_deb) || { echo "$deb"; exit 1; }
  command -v lintian >/dev/null || { echo "FAIL: lintian is not installed (scripts/install-deps --test)"; exit 1; }
  # --fail-on error,warning: any error or warning that no override covers fails; overridden
  # tags are listed with "O:" (--show-overrides) so the log shows what was let through.
  out=$(lintian --fail-on error,warning --show-overrides --tag-display-limit 0 "$deb" 2>&1)
  rc=$?
  echo "$out"
  [ $rc -eq 0 ] || fail "lintian exited $rc"
  if echo "$out" | grep -Eq '^[EW]: '; then fail "lintian errors or warnings (above)"; fi
  finish
  ;;

unit)
  command -v systemd-analyze >/dev/null || { echo "FAIL: no systemd-analyze (scripts/install-deps --test)"; exit 1; }
  for u in $UNITS; do
    case "$u" in *.service) check_exposure "$BUILD_DIR/etc/$u" ;; esac
  done
  finish
  ;;

prefix)
  prefix=$OUT_DIR/prefix
  rm -rf "$prefix"
  cmake --install "$BUILD_DIR" --prefix "$prefix" >/dev/null || { echo "FAIL: cmake --install --prefix"; exit 1; }
  unit=$prefix/lib/systemd/system/tunerd.service
  grep -qx "ExecStart=$prefix/bin/tunerd --config $prefix/etc/tunerd/tunerd.toml" "$unit" ||
    fail "ExecStart not made for $prefix: $(grep ExecStart "$unit" 2>&1)"
  [ -x "$prefix/bin/tunerd" ] && [ -x "$prefix/bin/tunerctl" ] || fail "binaries not in $prefix/bin"
  for u in $UNITS; do [ -f "$prefix/lib/systemd/system/$u" ] || fail "$u not installed"; done
  echo "# edited" >>"$prefix/etc/tunerd/tunerd.toml"
  cmake --install "$BUILD_DIR" --prefix "$prefix" >/dev/null || fail "second cmake --install"
  tail -n 1 "$prefix/etc/tunerd/tunerd.toml" | grep -qx "# edited" ||
    fail "a second install overwrote the edited config"
  rm -rf "$prefix"
  finish
  ;;

install)
  need_root
  deb=$(the_deb) || { echo "$deb"; exit 1; }
  mkdir -p "$SAVED_DIR"
  if ! installed; then
    # A run killed before its purge left what it set aside: back with it first.
    put_back
    [ "$failures" -eq 0 ] || finish
    # Not ours: a tunerd user or state made by hand (README's steps, tunerd run as root). The
    # purge would delete them, so the user makes the test skip, and the directories are set aside
    # and put back by the purge step.
    if getent passwd tunerd >/dev/null; then
      echo "SKIP: a tunerd user exists that the package did not create; the purge would delete it"
      exit 77
    fi
    for d in /var/lib/tunerd /etc/tunerd; do
      if [ -e "$d" ]; then
        echo "setting aside $d (not the package's) until the purge step"
        mv "$d" "$SAVED_DIR/$(echo "$d" | tr / _)"
      fi
    done
  fi
  # --no-triggers: man-db's trigger (a mandb run, about 13 s here) waits for the purge step's
  # dpkg run, which processes it once for both.
  out=$(dpkg_locked --no-triggers -i "$deb") || { echo "$out"; echo "FAIL: dpkg -i"; exit 1; }
  echo "$out"
  installed || fail "tunerd is not installed after dpkg -i"
  finish
  ;;

installed)
  need_root
  installed || { echo "FAIL: tunerd is not installed (Package.Install)"; exit 1; }
  entry=$(getent passwd tunerd) || fail "no tunerd user"
  echo "user: $entry"
  IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
  [ "${uid:-0}" -gt 0 ] && [ "${uid:-1000}" -lt 1000 ] || fail "tunerd's uid $uid is not a system uid"
  [ "$(getent group tunerd | cut -d: -f3)" = "$gid" ] || fail "tunerd's group is not its own"
  [ "$home" = /var/lib/tunerd ] || fail "home $home"
  [ "$shell" = /usr/sbin/nologin ] || fail "shell $shell"
  [ "$(stat -c '%U:%G %a' /var/lib/tunerd 2>/dev/null)" = "tunerd:tunerd 750" ] ||
    fail "/var/lib/tunerd: $(stat -c '%U:%G %a' /var/lib/tunerd 2>&1)"
  dpkg-query -W -f='${Conffiles}\n' tunerd | grep -q '/etc/tunerd/tunerd.toml' ||
    fail "dpkg does not list /etc/tunerd/tunerd.toml as a conffile"
  out=$(/usr/bin/tunerd --check-config --config /etc/tunerd/tunerd.toml 2>&1) ||
    { echo "$out"; fail "tunerd --check-config (root) on the installed config"; }
  echo "$out" | head -n 2
  out=$(runuser -u tunerd -- /usr/bin/tunerd --check-config --config /etc/tunerd/tunerd.toml 2>&1) ||
    { echo "$out"; fail "tunerd --check-config as the tunerd user"; }
  /usr/bin/tunerd --version || fail "tunerd --version"
  start_installed
  /usr/bin/tunerctl --help >/dev/null || fail "tunerctl --help"
  for u in $UNITS; do
    unit=/lib/systemd/system/$u
    [ -f "$unit" ] || { fail "$unit is not installed"; continue; }
    # --man=yes checks that Documentation='s man page is there (it needs man itself).
    man=no; command -v man >/dev/null && man=yes
    out=$(systemd-analyze verify --man=$man "$unit" 2>&1)
    rc=$?
    echo "systemd-analyze verify $unit: exit $rc${out:+; }$out"
    [ $rc -eq 0 ] || fail "systemd-analyze verify $unit exited $rc"
    if echo "$out" | grep -F "$u" >/dev/null; then fail "systemd-analyze verify complains about $u"; fi
    case "$u" in *.service) check_exposure "$unit" ;; esac
  done
  finish
  ;;

purge)
  need_root
  if installed || dpkg-query -W tunerd >/dev/null 2>&1; then
    out=$(dpkg_locked --purge tunerd) || { echo "$out"; fail "dpkg --purge tunerd"; }
    echo "$out"
  fi
  if dpkg-query -W -f='${db:Status-Status}' tunerd 2>/dev/null | grep -qv not-installed; then
    fail "tunerd is still known to dpkg: $(dpkg-query -W -f='${db:Status-Status}' tunerd)"
  fi
  for f in /usr/bin/tunerd /usr/bin/tunerctl /etc/tunerd /var/lib/tunerd /usr/share/doc/tunerd \
           /usr/share/lintian/overrides/tunerd /usr/share/man/man1/tunerctl.1.gz \
           /usr/share/man/man8/tunerd.8.gz $(for u in $UNITS; do echo "/lib/systemd/system/$u"; done); do
    [ ! -e "$f" ] || fail "$f is still there after the purge"
  done
  getent passwd tunerd >/dev/null && fail "the tunerd user is still there"
  getent group tunerd >/dev/null && fail "the tunerd group is still there"
  put_back
  finish
  ;;

*)
  echo "unknown step $step"; exit 2
  ;;
esac
