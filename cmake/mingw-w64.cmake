# Cross-compiling the Windows agent from Debian with MinGW-w64 (posix thread model, so that
# std::thread and std::mutex work). tools/build-windows.sh sets PARC_WINDOWS_PREFIX (in the
# environment, so that CMake's try-compile projects see it too): the list of directories where
# it installed the libraries it built from Debian's sources (Abseil, protobuf, SQLite).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)

set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32)
if(DEFINED ENV{PARC_WINDOWS_PREFIX})
  string(REPLACE ":" ";" parc_prefixes "$ENV{PARC_WINDOWS_PREFIX}")
  list(APPEND CMAKE_FIND_ROOT_PATH ${parc_prefixes})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest runs the Windows test programs under Wine.
find_program(PARC_WINE wine)
if(PARC_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PARC_WINE})
endif()
