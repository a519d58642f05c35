#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/timestamp.pb.h"
#include "parc/v1/admin.pb.h"
#include "parc/v1/agent.pb.h"
#include "server/operator_auth.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

// The dashboard's HTML building blocks. Every function that takes text meant to be shown
// escapes it itself; the ones that take markup say so (cells_html, body).
namespace parc::server::web {

// Text for HTML content and attribute values (& < > " ').
std::string Esc(absl::string_view s);
// A query-string component.
std::string UrlEncode(absl::string_view s);
std::string Percent(double p);
// dd/mm/yyyy hh:mm in the server's time zone, "jamais" for none.
std::string When(const google::protobuf::Timestamp& ts);
std::string KindLabel(parc::v1::DeviceKind kind);
std::string StateLabel(parc::v1::DeploymentState s);
std::string PackageStateLabel(parc::v1::PackageState s);

// The page around body (markup): header with the operator and the sign-out form (caller may
// be null on the sign-in page).
std::string Layout(const std::string& title, const Caller* caller, const std::string& csrf,
                   const std::string& body);

// Horizontal bar chart of percentages (0-100), one bar per row, with optional links.
struct Bar {
  std::string label;
  double percent = 0;
  std::string href;
  std::string detail;
};
std::string BarChart(const std::string& title, const std::vector<Bar>& bars);

// A sortable table: header links set ?tri=<key>&ordre=asc|desc; the rows are sorted here.
// rows hold the plain values (sorting, CSV), cells_html the markup shown for each.
struct Column {
  std::string key;
  std::string label;
  bool numeric = false;
};
std::string SortedTable(const httplib::Request& req, const std::string& base,
                        const std::vector<Column>& columns,
                        std::vector<std::vector<std::string>> rows,
                        std::vector<std::vector<std::string>> cells_html);

// A CSV download (UTF-8 with BOM, ';'), cells neutralised for spreadsheets.
void SendCsv(httplib::Response& res, const std::string& filename,
             const std::vector<std::string>& header,
             const std::vector<std::vector<std::string>>& rows);
bool WantsCsv(const httplib::Request& req);
std::string CookieValue(const httplib::Request& req, absl::string_view name);

}  // namespace parc::server::web
