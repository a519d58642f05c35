#include "agent/windows/winhttp.h"

#include <bcrypt.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/pem.h"
#include "common/windows_util.h"

namespace parc::agent {
namespace {

using common::Narrow;
using common::Widen;

DWORD Millis(absl::Duration d) {
  return static_cast<DWORD>(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

bool IsCa(PCCERT_CONTEXT cert) {
  PCERT_EXTENSION ext = CertFindExtension(szOID_BASIC_CONSTRAINTS2, cert->pCertInfo->cExtension,
                                          cert->pCertInfo->rgExtension);
  if (ext == nullptr) return false;
  CERT_BASIC_CONSTRAINTS2_INFO info{};
  DWORD size = sizeof(info);
  if (!CryptDecodeObjectEx(X509_ASN_ENCODING, szOID_BASIC_CONSTRAINTS2, ext->Value.pbData,
                           ext->Value.cbData, 0, nullptr, &info, &size)) {
    return false;
  }
  return info.fCA != FALSE;
}

// One DER INTEGER of an ECDSA-Sig-Value at `*p`, as `width` big-endian bytes (left-padded).
bool ReadInteger(const BYTE** p, const BYTE* end, size_t width, BYTE* out) {
  if (end - *p < 2 || (*p)[0] != 0x02 || (*p)[1] > 0x7f || end - *p < 2 + (*p)[1]) return false;
  const BYTE* v = *p + 2;
  size_t n = (*p)[1];
  *p = v + n;
  while (n > 0 && *v == 0) {
    ++v;
    --n;
  }
  if (n > width) return false;
  std::memset(out, 0, width - n);
  std::memcpy(out + (width - n), v, n);
  return true;
}

// An ECDSA P-256 / SHA-256 signature checked with BCrypt. Wine's crypt32 hands BCrypt r and s
// without their leading zero bytes, so a signature whose r or s is shorter than 32 bytes (about
// one in 128) fails there; this is what Windows computes for every signature.
bool EcdsaSha256SignedBy(PCCERT_CONTEXT subject, PCCERT_CONTEXT issuer) {
  CERT_SIGNED_CONTENT_INFO* signed_info = nullptr;
  DWORD size = 0;
  if (!CryptDecodeObjectEx(X509_ASN_ENCODING, X509_CERT, subject->pbCertEncoded,
                           subject->cbCertEncoded,
                           CRYPT_DECODE_ALLOC_FLAG | CRYPT_DECODE_NO_SIGNATURE_BYTE_REVERSAL_FLAG,
                           nullptr, &signed_info, &size)) {
    return false;
  }
  bool ok = false;
  BYTE sig[64];
  const BYTE* p = signed_info->Signature.pbData;
  const BYTE* end = p + signed_info->Signature.cbData;
  if (std::string(signed_info->SignatureAlgorithm.pszObjId) == szOID_ECDSA_SHA256 && end - p >= 2 &&
      p[0] == 0x30 && p[1] <= 0x7f && end - p == 2 + p[1]) {
    p += 2;
    if (ReadInteger(&p, end, 32, sig) && ReadInteger(&p, end, 32, sig + 32) && p == end) {
      common::Sha256 sha;
      sha.Update(absl::string_view(reinterpret_cast<const char*>(signed_info->ToBeSigned.pbData),
                                   signed_info->ToBeSigned.cbData));
      const std::string digest = absl::HexStringToBytes(sha.FinishHex());
      BCRYPT_KEY_HANDLE key = nullptr;
      if (CryptImportPublicKeyInfoEx2(X509_ASN_ENCODING, &issuer->pCertInfo->SubjectPublicKeyInfo,
                                      0, nullptr, &key)) {
        ok = BCryptVerifySignature(key, nullptr,
                                   reinterpret_cast<PUCHAR>(const_cast<char*>(digest.data())),
                                   static_cast<ULONG>(digest.size()), sig, sizeof(sig), 0) == 0;
        BCryptDestroyKey(key);
      }
    }
  }
  LocalFree(signed_info);
  return ok;
}

bool SignedBy(PCCERT_CONTEXT subject, PCCERT_CONTEXT issuer) {
  if (!CertCompareCertificateName(X509_ASN_ENCODING, &subject->pCertInfo->Issuer,
                                  &issuer->pCertInfo->Subject)) {
    return false;
  }
  return CryptVerifyCertificateSignatureEx(
             0, X509_ASN_ENCODING, CRYPT_VERIFY_CERT_SIGN_SUBJECT_CERT,
             const_cast<CERT_CONTEXT*>(subject), CRYPT_VERIFY_CERT_SIGN_ISSUER_CERT,
             const_cast<CERT_CONTEXT*>(issuer), 0, nullptr) != FALSE ||
         EcdsaSha256SignedBy(subject, issuer);
}

std::string SubjectOf(PCCERT_CONTEXT cert) {
  wchar_t name[256] = {0};
  CertGetNameStringW(cert, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, nullptr, name, 256);
  return Narrow(name);
}

absl::Status Failure(absl::string_view what, const std::string& url, DWORD err,
                     const std::atomic<bool>& cancelled) {
  if (cancelled || err == ERROR_WINHTTP_OPERATION_CANCELLED) {
    return absl::CancelledError("agent is stopping");
  }
  if (err == ERROR_WINHTTP_TIMEOUT) {
    return absl::DeadlineExceededError(absl::StrCat(what, " ", url, ": timed out"));
  }
  return absl::UnavailableError(
      absl::StrCat(what, " ", url, ": ", common::WindowsErrorText(err), " (error ", err, ")"));
}

// What the certificate callback learns about one request.
struct CertCheck {
  const PinnedCa* ca = nullptr;
  bool checked = false;
  bool closed = false;
  absl::Status status;
};

absl::Status CheckServerCertificate(HINTERNET request, const PinnedCa& ca) {
  PCCERT_CONTEXT cert = nullptr;
  DWORD size = sizeof(cert);
  if (!WinHttpQueryOption(request, WINHTTP_OPTION_SERVER_CERT_CONTEXT, &cert, &size) ||
      cert == nullptr) {
    return absl::UnavailableError("the server presented no certificate");
  }
  absl::Status s = ca.Check(cert);
  CertFreeCertificateContext(cert);
  return s;
}

// Runs after the TLS handshake and before the request's headers (and the device credential
// in them) are sent: a server whose certificate is not from the pinned CA gets nothing.
void CALLBACK OnStatus(HINTERNET request, DWORD_PTR context, DWORD status, LPVOID, DWORD) {
  if (status != WINHTTP_CALLBACK_STATUS_SENDING_REQUEST || context == 0) return;
  auto* check = reinterpret_cast<CertCheck*>(context);
  if (check->checked) return;
  check->checked = true;
  check->status = CheckServerCertificate(request, *check->ca);
  if (!check->status.ok()) {
    check->closed = true;
    WinHttpCloseHandle(request);  // aborts the send
  }
}

}  // namespace

// --- PinnedCa ---------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<PinnedCa>> PinnedCa::FromPem(const std::string& pem) {
  std::unique_ptr<PinnedCa> ca(new PinnedCa());
  absl::string_view rest = pem;
  while (true) {
    std::optional<std::string> der = common::PemDecode(rest, "CERTIFICATE");
    if (!der) break;
    PCCERT_CONTEXT cert =
        CertCreateCertificateContext(X509_ASN_ENCODING, reinterpret_cast<const BYTE*>(der->data()),
                                     static_cast<DWORD>(der->size()));
    if (cert == nullptr) {
      return absl::InvalidArgumentError("the pinned CA holds a certificate Windows cannot read");
    }
    ca->anchors_.push_back(cert);
    size_t end = rest.find("-----END CERTIFICATE-----");
    rest.remove_prefix(end + 25);
  }
  if (ca->anchors_.empty()) {
    return absl::InvalidArgumentError("the pinned CA holds no PEM certificate");
  }
  return ca;
}

PinnedCa::~PinnedCa() {
  for (PCCERT_CONTEXT c : anchors_) CertFreeCertificateContext(c);
}

absl::Status PinnedCa::Check(PCCERT_CONTEXT leaf) const {
  PCCERT_CONTEXT current = CertDuplicateCertificateContext(leaf);
  for (int depth = 0; depth < 5; ++depth) {
    if (CertVerifyTimeValidity(nullptr, current->pCertInfo) != 0) {
      std::string who = SubjectOf(current);
      CertFreeCertificateContext(current);
      return absl::UnavailableError(
          absl::StrCat("the server's certificate \"", who, "\" is expired or not yet valid"));
    }
    for (PCCERT_CONTEXT anchor : anchors_) {
      if (CertCompareCertificate(X509_ASN_ENCODING, current->pCertInfo, anchor->pCertInfo) ||
          SignedBy(current, anchor)) {
        CertFreeCertificateContext(current);
        return absl::OkStatus();
      }
    }
    // An intermediate CA among the certificates the server sent.
    PCCERT_CONTEXT issuer = nullptr;
    PCCERT_CONTEXT found = nullptr;
    while ((found = CertFindCertificateInStore(leaf->hCertStore, X509_ASN_ENCODING, 0,
                                               CERT_FIND_SUBJECT_NAME, &current->pCertInfo->Issuer,
                                               found)) != nullptr) {
      if (IsCa(found) && SignedBy(current, found) &&
          !CertCompareCertificate(X509_ASN_ENCODING, current->pCertInfo, found->pCertInfo)) {
        issuer = CertDuplicateCertificateContext(found);
        CertFreeCertificateContext(found);
        break;
      }
    }
    if (issuer == nullptr) break;
    CertFreeCertificateContext(current);
    current = issuer;
  }
  std::string who = SubjectOf(leaf);
  CertFreeCertificateContext(current);
  return absl::UnavailableError(absl::StrCat("the server's certificate \"", who,
                                             "\" is not issued by the CA this agent trusts"));
}

// --- WinHttpExchange --------------------------------------------------------------------------

WinHttpExchange::~WinHttpExchange() {
  if (request_ != nullptr && session_ != nullptr) session_->Forget(request_);
  if (connect_ != nullptr) WinHttpCloseHandle(connect_);
}

absl::StatusOr<size_t> WinHttpExchange::Read(char* buf, size_t n) {
  DWORD got = 0;
  if (!WinHttpReadData(request_, buf, static_cast<DWORD>(std::min<size_t>(n, 1u << 30)), &got)) {
    return Failure("cannot read the answer of", url_, GetLastError(), session_->cancelled_);
  }
  return static_cast<size_t>(got);
}

// --- WinHttpSession ---------------------------------------------------------------------------

WinHttpSession::WinHttpSession() {
  const std::wstring agent = Widen(absl::StrCat("parc-agent/", PARC_VERSION));
  // The machine's proxy settings, automatic ones included (Windows 8.1 and later), else the
  // static configuration of `netsh winhttp set proxy`.
  session_ = WinHttpOpen(agent.c_str(), WINHTTP_ACCESS_TYPE_AUTOMATIC_PROXY, WINHTTP_NO_PROXY_NAME,
                         WINHTTP_NO_PROXY_BYPASS, 0);
  if (session_ == nullptr) {
    session_ = WinHttpOpen(agent.c_str(), WINHTTP_ACCESS_TYPE_DEFAULT_PROXY, WINHTTP_NO_PROXY_NAME,
                           WINHTTP_NO_PROXY_BYPASS, 0);
  }
}

WinHttpSession::~WinHttpSession() {
  if (session_ != nullptr) WinHttpCloseHandle(session_);
}

void WinHttpSession::CancelAll() {
  cancelled_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (HINTERNET r : in_flight_) WinHttpCloseHandle(r);
  in_flight_.clear();
}

void WinHttpSession::Forget(HINTERNET request) {
  std::lock_guard<std::mutex> lock(mu_);
  // Closed here unless CancelAll already did.
  if (in_flight_.erase(request) > 0) WinHttpCloseHandle(request);
}

absl::StatusOr<std::unique_ptr<WinHttpExchange>> WinHttpSession::Send(const WinHttpRequest& r) {
  if (!r.carries_secret || r.ca_pem.empty()) return SendOnce(r);
  // The origin: everything before the path.
  const size_t scheme_end = r.url.find("://");
  const size_t path_start = r.url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  const std::string origin = r.url.substr(0, path_start);
  bool verified;
  {
    std::lock_guard<std::mutex> lock(mu_);
    verified = verified_origins_.count(origin) > 0;
  }
  if (!verified) {
    WinHttpRequest probe;
    probe.method = L"GET";
    probe.url = origin + "/healthz";
    probe.ca_pem = r.ca_pem;
    probe.timeout = r.timeout;
    probe.connect_timeout = r.connect_timeout;
    auto answer = SendOnce(probe);
    if (!answer.ok()) return answer.status();
    char sink[512];
    while (true) {  // read to the end, so that the connection goes back to the pool
      auto n = (*answer)->Read(sink, sizeof(sink));
      if (!n.ok() || *n == 0) break;
    }
  }
  auto result = SendOnce(r);
  std::lock_guard<std::mutex> lock(mu_);
  if (result.ok()) {
    verified_origins_.insert(origin);
  } else {
    verified_origins_.erase(origin);  // check again on the next connection
  }
  return result;
}

absl::StatusOr<std::unique_ptr<WinHttpExchange>> WinHttpSession::SendOnce(const WinHttpRequest& r) {
  if (cancelled_) return absl::CancelledError("agent is stopping");
  if (session_ == nullptr) return absl::InternalError("WinHTTP is not available");
  const std::wstring wurl = Widen(r.url);
  URL_COMPONENTS uc{};
  uc.dwStructSize = sizeof(uc);
  uc.dwHostNameLength = static_cast<DWORD>(-1);
  uc.dwUrlPathLength = static_cast<DWORD>(-1);
  uc.dwExtraInfoLength = static_cast<DWORD>(-1);
  uc.dwSchemeLength = static_cast<DWORD>(-1);
  if (!WinHttpCrackUrl(wurl.c_str(), 0, 0, &uc)) {
    return absl::InvalidArgumentError(absl::StrCat("not an http(s) URL: ", r.url));
  }
  const bool secure = uc.nScheme == INTERNET_SCHEME_HTTPS;
  const std::wstring host(uc.lpszHostName, uc.dwHostNameLength);
  std::wstring path(uc.lpszUrlPath, uc.dwUrlPathLength);
  if (uc.lpszExtraInfo != nullptr) path.append(uc.lpszExtraInfo, uc.dwExtraInfoLength);
  if (path.empty()) path = L"/";

  std::unique_ptr<PinnedCa> ca;
  if (secure && !r.ca_pem.empty()) {
    auto parsed = PinnedCa::FromPem(r.ca_pem);
    if (!parsed.ok()) return parsed.status();
    ca = std::move(*parsed);
  }

  std::unique_ptr<WinHttpExchange> x(new WinHttpExchange());
  x->session_ = this;
  x->url_ = r.url;
  x->connect_ = WinHttpConnect(session_, host.c_str(), uc.nPort, 0);
  if (x->connect_ == nullptr) return Failure("cannot reach", r.url, GetLastError(), cancelled_);
  HINTERNET request =
      WinHttpOpenRequest(x->connect_, r.method.c_str(), path.c_str(), nullptr, WINHTTP_NO_REFERER,
                         WINHTTP_DEFAULT_ACCEPT_TYPES, secure ? WINHTTP_FLAG_SECURE : 0);
  if (request == nullptr) return Failure("cannot reach", r.url, GetLastError(), cancelled_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) {
      WinHttpCloseHandle(request);
      return absl::CancelledError("agent is stopping");
    }
    in_flight_.insert(request);
    x->request_ = request;
  }
  WinHttpSetTimeouts(request, static_cast<int>(Millis(r.connect_timeout)),
                     static_cast<int>(Millis(r.connect_timeout)),
                     static_cast<int>(Millis(r.timeout)), static_cast<int>(Millis(r.timeout)));
  // Redirects are not followed: neither AgentService nor an artifact server sends any.
  DWORD redirects = WINHTTP_OPTION_REDIRECT_POLICY_NEVER;
  WinHttpSetOption(request, WINHTTP_OPTION_REDIRECT_POLICY, &redirects, sizeof(redirects));

  CertCheck check;
  if (ca != nullptr) {
    check.ca = ca.get();
    DWORD flags = SECURITY_FLAG_IGNORE_UNKNOWN_CA;
    WinHttpSetOption(request, WINHTTP_OPTION_SECURITY_FLAGS, &flags, sizeof(flags));
    WinHttpSetStatusCallback(request, OnStatus, WINHTTP_CALLBACK_FLAG_SEND_REQUEST, 0);
  }

  std::wstring headers;
  for (const auto& [name, value] : r.headers) {
    headers += Widen(absl::StrCat(name, ": ", value, "\r\n"));
  }
  BOOL sent = WinHttpSendRequest(
      request, headers.empty() ? WINHTTP_NO_ADDITIONAL_HEADERS : headers.c_str(),
      headers.empty() ? 0 : static_cast<DWORD>(-1), const_cast<char*>(r.body.data()),
      static_cast<DWORD>(r.body.size()), static_cast<DWORD>(r.body.size()),
      ca != nullptr ? reinterpret_cast<DWORD_PTR>(&check) : 0);
  DWORD err = sent ? 0 : GetLastError();
  if (check.closed) {
    // The callback refused the certificate and closed the request.
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.erase(request);
    x->request_ = nullptr;
    return check.status;
  }
  if (sent && !WinHttpReceiveResponse(request, nullptr)) err = GetLastError();
  if (err != 0) return Failure("no answer from", r.url, err, cancelled_);
  if (ca != nullptr && !check.checked) {
    // The callback did not run: check now, and fail closed.
    absl::Status s = CheckServerCertificate(request, *ca);
    if (!s.ok()) return s;
  } else if (ca != nullptr && !check.status.ok()) {
    return check.status;
  }

  DWORD code = 0, size = sizeof(code);
  WinHttpQueryHeaders(request, WINHTTP_QUERY_STATUS_CODE | WINHTTP_QUERY_FLAG_NUMBER,
                      WINHTTP_HEADER_NAME_BY_INDEX, &code, &size, WINHTTP_NO_HEADER_INDEX);
  x->status_ = static_cast<int>(code);
  size = 0;
  WinHttpQueryHeaders(request, WINHTTP_QUERY_RAW_HEADERS_CRLF, WINHTTP_HEADER_NAME_BY_INDEX,
                      WINHTTP_NO_OUTPUT_BUFFER, &size, WINHTTP_NO_HEADER_INDEX);
  if (size > 0) {
    std::wstring raw(size / sizeof(wchar_t) + 1, L'\0');
    if (WinHttpQueryHeaders(request, WINHTTP_QUERY_RAW_HEADERS_CRLF, WINHTTP_HEADER_NAME_BY_INDEX,
                            raw.data(), &size, WINHTTP_NO_HEADER_INDEX)) {
      raw.resize(size / sizeof(wchar_t));
      for (absl::string_view line : absl::StrSplit(Narrow(raw), "\r\n")) {
        const size_t colon = line.find(':');
        if (colon == absl::string_view::npos) continue;
        x->headers_[absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)))] =
            std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return x;
}

}  // namespace parc::agent
