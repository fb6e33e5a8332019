# Runs at install time (install(CODE) in packaging/CMakeLists.txt sets TUNER_PACKAGING_DIR,
# TUNER_UNITS_WORK_DIR, TUNER_INSTALL_BINDIR, TUNER_INSTALL_DOCDIR, TUNER_UNIT_TEMPLATES and
# TUNER_CONFIG_FILE): makes the systemd units for the prefix being installed to, installs them and
# the config file. file(INSTALL) puts $DESTDIR in front, as the generated install rules do.
include("${TUNER_PACKAGING_DIR}/install_paths.cmake")
tuner_install_paths("${CMAKE_INSTALL_PREFIX}" "${TUNER_INSTALL_BINDIR}" "${TUNER_INSTALL_DOCDIR}")

file(MAKE_DIRECTORY "${TUNER_UNITS_WORK_DIR}")
set(units "")
foreach(template IN LISTS TUNER_UNIT_TEMPLATES)
  get_filename_component(name "${template}" NAME)
  string(REGEX REPLACE "\\.in$" "" name "${name}")
  configure_file("${template}" "${TUNER_UNITS_WORK_DIR}/${name}" @ONLY)
  list(APPEND units "${TUNER_UNITS_WORK_DIR}/${name}")
endforeach()
file(INSTALL DESTINATION "${TUNER_UNITDIR}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES ${units})

# The config file: an existing one is the operator's and is kept (the package marks it a conffile,
# so dpkg asks instead).
set(config_dest "${TUNER_SYSCONFDIR}/tunerd")
if(EXISTS "$ENV{DESTDIR}${config_dest}/tunerd.toml")
  message(STATUS "Keeping: $ENV{DESTDIR}${config_dest}/tunerd.toml (exists)")
else()
  file(INSTALL DESTINATION "${config_dest}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES "${TUNER_CONFIG_FILE}")
endif()
