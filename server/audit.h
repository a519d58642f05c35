#pragma once

#include <grpcpp/support/server_interceptor.h>

#include "common/clock.h"
#include "server/store.h"

namespace parc::server {

// Records every state-changing admin call in the audit log: who (the operator behind the
// token, or "unauthenticated"), what (the method and a summary of the request, without file
// contents or secrets), when, and the outcome (the status code, refusals included). A gRPC
// server interceptor, so no handler can forget it.
class AuditInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  AuditInterceptorFactory(Store* store, const common::Clock* clock)
      : store_(store), clock_(clock) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

  // Whether a fully qualified method ("/parc.v1.AdminService/UpdateRollout") is audited.
  static bool IsAudited(absl::string_view method);

 private:
  Store* store_;
  const common::Clock* clock_;
};

// A one-line summary of an admin request for the audit log: the fields that say what is
// acted on, with bytes fields (file contents) left out, at most 300 characters.
std::string SummarizeRequest(absl::string_view method, const google::protobuf::Message& request);

}  // namespace parc::server
