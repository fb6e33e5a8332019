# Where tunerd's files go for an install prefix. Used twice: at configure time for the build
# tree's copy of the unit (build/etc/tunerd.service), and at install time (install_units.cmake),
# because `cmake --install --prefix P` and CPack (prefix /usr for the .deb) may install to another
# prefix than the one the build was configured with; the unit names absolute paths, so it is made
# for the prefix it is installed under.
#
# Sets TUNER_BINDIR, TUNER_SYSCONFDIR, TUNER_DOCDIR and TUNER_UNITDIR (absolute) in the caller.
# For the prefixes /usr and /usr/local the configuration goes to /etc/tunerd, where tunerd and
# tunerctl look for it without --config (GNUInstallDirs would say /usr/local/etc for /usr/local);
# other prefixes keep it under <prefix>/etc. For /usr the units go to /lib/systemd/system: Debian
# 12 keeps packaged files out of /usr/lib/systemd during the usrmerge transition (docs/operations.md,
# "Installing the package"); systemd also reads /usr/local/lib/systemd/system.
function(tuner_install_paths prefix bindir docdir)
  string(REGEX REPLACE "/+$" "" prefix "${prefix}")
  if(prefix STREQUAL "/usr")
    set(sysconfdir "/etc")
    set(unitdir "/lib/systemd/system")
  elseif(prefix STREQUAL "/usr/local")
    set(sysconfdir "/etc")
    set(unitdir "${prefix}/lib/systemd/system")
  else()
    set(sysconfdir "${prefix}/etc")
    set(unitdir "${prefix}/lib/systemd/system")
  endif()
  foreach(kind bindir docdir)
    if(IS_ABSOLUTE "${${kind}}")
      set(full_${kind} "${${kind}}")
    else()
      set(full_${kind} "${prefix}/${${kind}}")
    endif()
  endforeach()
  set(TUNER_BINDIR "${full_bindir}" PARENT_SCOPE)
  set(TUNER_SYSCONFDIR "${sysconfdir}" PARENT_SCOPE)
  set(TUNER_DOCDIR "${full_docdir}" PARENT_SCOPE)
  set(TUNER_UNITDIR "${unitdir}" PARENT_SCOPE)
endfunction()
