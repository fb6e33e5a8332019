# Writes a C++ header holding a file's text as a raw string literal (cmake -P, at build time):
#   cmake -DINPUT=page.html -DOUTPUT=page.hpp -DNAME=status_page_html -P embed_page.cmake
file(READ "${INPUT}" text)
string(FIND "${text}" ")tunerd_embed\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw string delimiter )tunerd_embed\"")
endif()
set(header "// Generated at build time from ${INPUT} by embed_page.cmake: do not edit.\n")
string(APPEND header "#pragma once\n\n#include <string_view>\n\nnamespace tuner::embedded {\n")
string(APPEND header "inline constexpr std::string_view ${NAME} = R\"tunerd_embed(${text})tunerd_embed\";\n")
string(APPEND header "}  // namespace tuner::embedded\n")
file(WRITE "${OUTPUT}" "${header}")
