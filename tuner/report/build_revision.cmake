# Run at every build (the tuner_revision target): writes the source tree's git revision into
# OUTPUT, and rewrites the file only when it changed, so that a binary never reports the
# revision of an older configure and an unchanged tree rebuilds nothing.
execute_process(COMMAND git -C ${SOURCE_DIR} rev-parse --short HEAD
                OUTPUT_VARIABLE revision OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT revision)
  set(revision "unknown")
endif()
set(text "// Generated at build time by tuner/report/build_revision.cmake.
#include \"tuner/build_info.hpp\"

namespace tuner::build {
const char* revision() { return \"${revision}\"; }
}  // namespace tuner::build
")
set(old "")
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUTPUT} "${text}")
endif()
