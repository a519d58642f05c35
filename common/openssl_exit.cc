#include "common/openssl_exit.h"

#include <openssl/crypto.h>

namespace parc::common {

bool KeepOpenSslStateAtExit() {
  // OpenSSL registers its exit handler once, at the first initialization that does not ask
  // otherwise; later initializations (gRPC's OPENSSL_init_ssl, libcurl's) find it decided.
  return OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) == 1;
}

}  // namespace parc::common
