# One INTERFACE target carries the project's warning flags and sanitizer options; every Parc
# target links it with parc_target_defaults().
add_library(parc_warnings INTERFACE)
target_compile_options(parc_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual -Wformat=2 -Wimplicit-fallthrough)
if(PARC_WERROR)
  target_compile_options(parc_warnings INTERFACE -Werror)
endif()

if(PARC_SANITIZE)
  message(STATUS "Parc sanitizers: ${PARC_SANITIZE}")
endif()

function(parc_target_defaults target)
  target_link_libraries(${target} PRIVATE parc_warnings)
  if(PARC_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${PARC_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${PARC_SANITIZE})
  endif()
endfunction()
