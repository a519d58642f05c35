#include "server/audit.h"

#include <array>
#include <regex>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"
#include "parc/v1/admin.pb.h"
#include "parc/v1/bundle.pb.h"

namespace parc::server {
namespace {

constexpr std::array<absl::string_view, 13> kAudited = {"RetireDevice",
                                                        "ImportEstablishments",
                                                        "CreateEnrollmentToken",
                                                        "RevokeEnrollmentToken",
                                                        "PreassignDevices",
                                                        "PublishBundle",
                                                        "CreateRollout",
                                                        "UpdateRollout",
                                                        "CreateOperator",
                                                        "RevokeOperator",
                                                        "AddRelay",
                                                        "RemoveRelay",
                                                        "SetOsSupport"};

constexpr absl::string_view kPrefix = "/parc.v1.AdminService/";

class AuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuditInterceptor(grpc::experimental::ServerRpcInfo* info, Store* store,
                   const common::Clock* clock)
      : info_(info), store_(store), clock_(clock) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      const void* message = methods->GetRecvMessage();
      if (message != nullptr && target_.empty()) {
        target_ =
            SummarizeRequest(Method(), *static_cast<const google::protobuf::Message*>(message));
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus());
    }
    methods->Proceed();
  }

 private:
  absl::string_view Method() const {
    absl::string_view m = info_->method();
    if (m.substr(0, kPrefix.size()) == kPrefix) m.remove_prefix(kPrefix.size());
    return m;
  }

  void Record(const grpc::Status& status) {
    AuditRecord e;
    e.at = clock_->Now();
    e.action = std::string(Method());
    e.target = target_;
    e.outcome = status.ok() ? "ok" : common::StatusCodeName(status.error_code());
    e.detail = status.error_message().substr(0, 300);
    e.operator_name = "unauthenticated";
    std::string bearer = common::BearerToken(*info_->server_context());
    auto credential = common::ParseCredential(bearer);
    if (credential.ok()) {
      auto op = store_->GetOperator(credential->id);
      if (op.ok() &&
          common::ConstantTimeEquals(op->secret_hash, common::Sha256Hex(credential->secret))) {
        e.operator_id = op->id;
        e.operator_name = op->name;
      }
    }
    // Calls without a valid operator token change nothing and are not written: a flood of
    // them costs no write (they are counted in parc_rpcs_total and sampled in the log).
    if (e.operator_id.empty()) return;
    store_->AppendAudit(std::move(e), [](absl::StatusOr<bool> r) {
      if (!r.ok()) spdlog::error("audit log: {}", r.status().ToString());
    });
  }

  grpc::experimental::ServerRpcInfo* info_;
  Store* store_;
  const common::Clock* clock_;
  std::string target_;
};

}  // namespace

bool AuditInterceptorFactory::IsAudited(absl::string_view method) {
  if (method.substr(0, kPrefix.size()) != kPrefix) return false;
  method.remove_prefix(kPrefix.size());
  for (auto m : kAudited) {
    if (m == method) return true;
  }
  return false;
}

grpc::experimental::Interceptor* AuditInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  if (!IsAudited(info->method())) return nullptr;
  return new AuditInterceptor(info, store_, clock_);
}

std::string SummarizeRequest(absl::string_view method, const google::protobuf::Message& request) {
  std::unique_ptr<google::protobuf::Message> copy(request.New());
  copy->CopyFrom(request);
  const auto* descriptor = copy->GetDescriptor();
  const auto* reflection = copy->GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* field = descriptor->field(i);
    // File contents and signed manifests: summarized elsewhere, too long here.
    if (field->type() == google::protobuf::FieldDescriptor::TYPE_BYTES ||
        field->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
      reflection->ClearField(copy.get(), field);
    }
  }
  std::string text;
  google::protobuf::TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  printer.PrintToString(*copy, &text);
  if (const auto* publish = dynamic_cast<const parc::v1::PublishBundleRequest*>(&request)) {
    parc::v1::BundleManifest m;
    text = m.ParseFromString(publish->bundle().manifest())
               ? absl::StrCat(m.name(), "@", m.version(), " (sequence ", m.sequence(), ")")
               : "unreadable manifest";
  }
  (void)method;
  // A token pasted where its id was expected ("tokens revoke <token>") keeps its id only.
  static const std::regex kSecret("([A-Za-z0-9_-]+)\\.[0-9a-f]{32,}");
  text = std::regex_replace(text, kSecret, "$1.<secret>");
  while (!text.empty() && text.back() == ' ') text.pop_back();
  if (text.size() > 300) text = text.substr(0, 297) + "...";
  return text;
}

}  // namespace parc::server
