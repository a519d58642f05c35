#pragma once

namespace parc::common {

// Keeps OpenSSL from freeing its global state at the process's exit (OPENSSL_cleanup, which
// OpenSSL otherwise registers with atexit the first time it is used).
//
// gRPC's threads, and libcurl's, may still be ending when main returns: each frees its own
// OpenSSL thread state on the way out, OPENSSL_cleanup frees the same state from the exiting
// thread, and the two race. `parc-agent run --once` under AddressSanitizer reported a double
// free at exit in one of thirteen runs of RelayTest's thirty agents, and one such process hung
// in CI. The process's memory goes back to the system at exit anyway.
//
// Call it first thing in main (before anything uses OpenSSL: gRPC, libcurl, Parc's hashes):
// once OpenSSL registered its handler, nothing removes it. Returns false if OpenSSL could not
// initialize.
bool KeepOpenSslStateAtExit();

}  // namespace parc::common
