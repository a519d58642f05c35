# Dependencies of the Windows agent, cross-built with MinGW-w64 (cmake/mingw-w64.cmake).
# tools/build-windows.sh builds Abseil, the protobuf runtime and SQLite from Debian's source
# packages (PARC_WINDOWS_PREFIX), and copies Debian's header-only libraries (toml++, CLI11,
# Asio, spdlog, fmt) into PARC_HOST_HEADERS: their headers are platform-neutral, but the host's
# /usr/include cannot be put on a MinGW include path. gRPC has no supported MinGW build: the
# Windows agent speaks gRPC-Web over WinHTTP. libgcrypt (Ed25519) comes from Debian's MinGW
# package.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(protobuf CONFIG REQUIRED)
find_program(PARC_PROTOC protoc REQUIRED NO_CMAKE_FIND_ROOT_PATH)

find_library(PARC_SQLITE_LIB sqlite3 REQUIRED)
find_path(PARC_SQLITE_INCLUDE sqlite3.h REQUIRED)
add_library(SQLite::SQLite3 STATIC IMPORTED)
set_target_properties(SQLite::SQLite3 PROPERTIES IMPORTED_LOCATION ${PARC_SQLITE_LIB}
                      INTERFACE_INCLUDE_DIRECTORIES ${PARC_SQLITE_INCLUDE})

find_library(PARC_GCRYPT_LIB libgcrypt.a REQUIRED)
find_library(PARC_GPG_ERROR_LIB libgpg-error.a REQUIRED)
add_library(parc_gcrypt INTERFACE)
target_link_libraries(parc_gcrypt INTERFACE ${PARC_GCRYPT_LIB} ${PARC_GPG_ERROR_LIB} ws2_32)

# libarchive (zip and tar packages) from Debian's source package, with zlib from Debian's
# MinGW package (libz-mingw-w64-dev) and no other compression library.
find_library(PARC_ARCHIVE_LIB libarchive_static.a REQUIRED)
find_path(PARC_ARCHIVE_INCLUDE archive.h REQUIRED)
find_library(PARC_ZLIB_LIB libz.a REQUIRED)
add_library(LibArchive::LibArchive INTERFACE IMPORTED)
set_target_properties(LibArchive::LibArchive PROPERTIES
  INTERFACE_LINK_LIBRARIES "${PARC_ARCHIVE_LIB};${PARC_ZLIB_LIB};bcrypt"
  INTERFACE_INCLUDE_DIRECTORIES ${PARC_ARCHIVE_INCLUDE}
  INTERFACE_COMPILE_DEFINITIONS LIBARCHIVE_STATIC)

if(NOT PARC_HOST_HEADERS)
  message(FATAL_ERROR "PARC_HOST_HEADERS is not set: build with tools/build-windows.sh")
endif()
set(TOMLPP_INCLUDE_DIR ${PARC_HOST_HEADERS})
add_library(parc_asio INTERFACE)
target_include_directories(parc_asio SYSTEM INTERFACE ${PARC_HOST_HEADERS})
target_compile_definitions(parc_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
target_link_libraries(parc_asio INTERFACE Threads::Threads ws2_32 mswsock)
add_library(parc_cli11 INTERFACE)
target_include_directories(parc_cli11 SYSTEM INTERFACE ${PARC_HOST_HEADERS})
add_library(parc_spdlog INTERFACE)
target_include_directories(parc_spdlog SYSTEM INTERFACE ${PARC_HOST_HEADERS})
target_compile_definitions(parc_spdlog INTERFACE FMT_HEADER_ONLY)
add_library(spdlog::spdlog ALIAS parc_spdlog)

# Windows 10 is the oldest version the agent supports (loRdi run Windows 10/11 Education).
add_compile_definitions(_WIN32_WINNT=0x0A00 WINVER=0x0A00 NOMINMAX WIN32_LEAN_AND_MEAN UNICODE
                        _UNICODE)
# One self-contained .exe: no MinGW runtime DLLs to ship next to it.
add_link_options(-static -static-libgcc -static-libstdc++)

# GoogleTest from Debian's source package (googletest), built for Windows with the tests.
if(PARC_BUILD_TESTS)
  set(gtest_force_shared_crt OFF CACHE BOOL "" FORCE)
  add_subdirectory(/usr/src/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
endif()
