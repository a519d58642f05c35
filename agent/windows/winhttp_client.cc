#include "agent/windows/winhttp_client.h"

#include "absl/strings/str_cat.h"

namespace parc::agent {
namespace {

// Answers larger than this are not AgentService's (as on Linux).
constexpr size_t kMaxAnswerBytes = 16 << 20;

}  // namespace

absl::StatusOr<HttpAnswer> WinHttpClient::Post(const HttpPost& request) {
  WinHttpRequest r;
  r.url = request.url;
  r.headers = request.headers;
  r.body = request.body;
  r.ca_pem = request.ca_pem;
  r.timeout = request.timeout;
  r.carries_secret = true;  // every AgentService call carries a token or a credential
  auto exchange = session_.Send(r);
  if (!exchange.ok()) return exchange.status();
  HttpAnswer answer;
  answer.status = (*exchange)->status();
  answer.headers = (*exchange)->headers();
  char buf[16384];
  while (true) {
    auto n = (*exchange)->Read(buf, sizeof(buf));
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (answer.body.size() + *n > kMaxAnswerBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("answer over ", kMaxAnswerBytes, " bytes from ", request.url));
    }
    answer.body.append(buf, *n);
  }
  return answer;
}

}  // namespace parc::agent
