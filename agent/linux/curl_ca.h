#pragma once

#include <curl/curl.h>

#include <string>

namespace parc::agent {

// Makes curl check the server against this CA (PEM) only; "" leaves the system's CAs.
// libcurl copies the PEM (CURL_BLOB_COPY), so it need not outlive the call.
inline void PinCa(CURL* curl, const std::string& ca_pem) {
  if (ca_pem.empty()) return;
  curl_blob ca;
  ca.data = const_cast<char*>(ca_pem.data());
  ca.len = ca_pem.size();
  ca.flags = CURL_BLOB_COPY;
  curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
}

}  // namespace parc::agent
