#include "server/tls_bootstrap.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace parc::server {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

absl::Status OpenSslError(absl::string_view what) {
  unsigned long code = ERR_get_error();
  char buf[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, buf, sizeof(buf));
  return absl::InternalError(absl::StrCat("TLS setup: ", what, ": ", buf));
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return OpenSslError(absl::StrCat("extension ", value));
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError("X509_add_ext");
  return absl::OkStatus();
}

absl::StatusOr<X509Ptr> NewCert(EVP_PKEY* key, const std::string& common_name, long days) {
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return OpenSslError("RAND_bytes");
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Parc"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

absl::StatusOr<std::string> PemOf(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("PEM_write_bio_X509");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<std::string> PemOf(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

bool IsIpAddress(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// A server certificate for names (DNS names, IP addresses), valid 2 years, signed by the CA.
absl::StatusOr<X509Ptr> SignLeaf(X509* ca, EVP_PKEY* ca_key, EVP_PKEY* key,
                                 const std::vector<std::string>& names) {
  PARC_ASSIGN_OR_RETURN(X509Ptr cert, NewCert(key, names[0], 730));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca));
  std::vector<std::string> sans;
  for (const auto& n : names) sans.push_back(absl::StrCat(IsIpAddress(n) ? "IP:" : "DNS:", n));
  PARC_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_basic_constraints, "CA:FALSE"));
  PARC_RETURN_IF_ERROR(
      AddExtension(cert.get(), ca, NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  PARC_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_ext_key_usage, "serverAuth"));
  PARC_RETURN_IF_ERROR(
      AddExtension(cert.get(), ca, NID_subject_alt_name, absl::StrJoin(sans, ",")));
  PARC_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), ca_key, EVP_sha256()) == 0) return OpenSslError("sign cert");
  return cert;
}

}  // namespace

absl::StatusOr<TlsMaterial> IssueCertificate(const std::string& dir,
                                             const std::vector<std::string>& names) {
  if (names.empty()) return absl::InvalidArgumentError("no TLS name given");
  for (const auto& n : names) {
    if (n.empty() || n.size() > 253 ||
        n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:") !=
            std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("name \"", n.substr(0, 64), "\": not a DNS name or IP address"));
    }
  }
  PARC_ASSIGN_OR_RETURN(std::string ca_pem, common::ReadFile(dir + "/ca.pem"));
  absl::StatusOr<std::string> ca_key_pem = common::ReadFile(dir + "/ca.key");
  if (!ca_key_pem.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, "/ca.key: ", ca_key_pem.status().message(),
                     " (only the server's own private CA can issue certificates; with an "
                     "operator-supplied certificate, issue the relay's from the same PKI)"));
  }
  BioPtr ca_bio(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  X509Ptr ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
  BioPtr key_bio(BIO_new_mem_buf(ca_key_pem->data(), static_cast<int>(ca_key_pem->size())));
  PkeyPtr ca_key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!ca || !ca_key) return OpenSslError(absl::StrCat("reading the CA in ", dir));
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("EC key generation");
  PARC_ASSIGN_OR_RETURN(X509Ptr cert, SignLeaf(ca.get(), ca_key.get(), key.get(), names));
  TlsMaterial m;
  m.ca_path = dir + "/ca.pem";
  PARC_ASSIGN_OR_RETURN(std::string cert_pem, PemOf(cert.get()));
  PARC_ASSIGN_OR_RETURN(m.key_pem, PemOf(key.get()));
  m.cert_pem = cert_pem + ca_pem;
  m.created = true;
  return m;
}

absl::StatusOr<TlsMaterial> EnsureTlsMaterial(const std::string& dir,
                                              const std::vector<std::string>& names) {
  if (names.empty()) return absl::InvalidArgumentError("no TLS name given");
  PARC_RETURN_IF_ERROR(common::MakeDirs(dir, 0700));
  TlsMaterial m;
  m.ca_path = dir + "/ca.pem";
  const std::string cert_path = dir + "/server.pem";
  const std::string key_path = dir + "/server.key";
  if (common::PathExists(cert_path) && common::PathExists(key_path) &&
      common::PathExists(m.ca_path)) {
    PARC_ASSIGN_OR_RETURN(m.cert_pem, common::ReadFile(cert_path));
    PARC_ASSIGN_OR_RETURN(m.key_pem, common::ReadFile(key_path));
    return m;
  }

  PkeyPtr ca_key(EVP_EC_gen("P-256"));
  PkeyPtr server_key(EVP_EC_gen("P-256"));
  if (!ca_key || !server_key) return OpenSslError("EC key generation");

  PARC_ASSIGN_OR_RETURN(X509Ptr ca, NewCert(ca_key.get(), "Parc private CA", 3650));
  X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get()));
  PARC_RETURN_IF_ERROR(AddExtension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE"));
  PARC_RETURN_IF_ERROR(
      AddExtension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  PARC_RETURN_IF_ERROR(AddExtension(ca.get(), ca.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(ca.get(), ca_key.get(), EVP_sha256()) == 0) return OpenSslError("sign CA");

  PARC_ASSIGN_OR_RETURN(X509Ptr cert, SignLeaf(ca.get(), ca_key.get(), server_key.get(), names));

  PARC_ASSIGN_OR_RETURN(std::string ca_pem, PemOf(ca.get()));
  PARC_ASSIGN_OR_RETURN(std::string ca_key_pem, PemOf(ca_key.get()));
  PARC_ASSIGN_OR_RETURN(std::string cert_pem, PemOf(cert.get()));
  PARC_ASSIGN_OR_RETURN(std::string key_pem, PemOf(server_key.get()));
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(dir + "/ca.key", ca_key_pem, 0600));
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(key_path, key_pem, 0600));
  // The chain the server presents: its certificate, then the CA.
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(cert_path, cert_pem + ca_pem, 0644));
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(m.ca_path, ca_pem, 0644));
  m.cert_pem = cert_pem + ca_pem;
  m.key_pem = key_pem;
  m.created = true;
  return m;
}

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const std::string& cert_path,
                                            const std::string& key_path) {
  TlsMaterial m;
  PARC_ASSIGN_OR_RETURN(m.cert_pem, common::ReadFile(cert_path));
  PARC_ASSIGN_OR_RETURN(m.key_pem, common::ReadFile(key_path));
  if (m.cert_pem.find("BEGIN CERTIFICATE") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(cert_path, " holds no PEM certificate"));
  }
  if (m.key_pem.find("PRIVATE KEY") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(key_path, " holds no PEM private key"));
  }
  return m;
}

}  // namespace parc::server
