# Helpers that give every medlens target the same warnings and include root.

function(medlens_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter
    $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized -Wno-restrict>)
endfunction()

# medlens_library(NAME SOURCES... [DEPS public-deps...] [PRIVATE_DEPS private-deps...])
# One static library per pipeline stage; its public headers are included as "stage/file.h".
function(medlens_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  medlens_warnings(${name})
endfunction()
