#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/timestamp.pb.h"
#include "parc/v1/admin.pb.h"
#include "parc/v1/agent.pb.h"
#include "server/operator_auth.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

// The dashboard's HTML building blocks. Pages are Html values, escaped by construction:
// markup comes only from string literals written in the code and from other Html values;
// every std::string or string_view appended is text and is escaped on the way in.
namespace parc::server::web {

// Text for HTML content and attribute values (& < > " ').
std::string Esc(absl::string_view s);

template <typename T>
inline constexpr bool kNotHtmlPart = false;

class Html {
 public:
  Html() = default;

  // Html::Of("<p>", name, "</p>"): literals are markup, strings are escaped text, numbers are
  // printed. A const char* that is not a literal does not compile: say which it is.
  template <typename... Parts>
  static Html Of(const Parts&... parts) {
    Html h;
    h.Add(parts...);
    return h;
  }

  template <typename... Parts>
  Html& Add(const Parts&... parts) {
    (Append(parts), ...);
    return *this;
  }

  const std::string& str() const { return markup_; }
  bool empty() const { return markup_.empty(); }

 private:
  template <typename T>
  void Append(const T& part) {
    if constexpr (std::is_same_v<T, Html>) {
      markup_ += part.markup_;
    } else if constexpr (std::is_array_v<T>) {
      static_assert(std::is_same_v<std::remove_cv_t<std::remove_extent_t<T>>, char>);
      markup_.append(part, sizeof(T) - 1);  // a literal, without its terminating NUL
    } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, absl::string_view>) {
      markup_ += Esc(part);
    } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool> &&
                         !std::is_same_v<T, char>) {
      absl::StrAppend(&markup_, part);
    } else {
      static_assert(kNotHtmlPart<T>,
                    "Html parts: string literals (markup), Html, std::string or string_view "
                    "(text, escaped), numbers");
    }
  }

  std::string markup_;
};
// A query-string component.
std::string UrlEncode(absl::string_view s);
std::string Percent(double p);
// dd/mm/yyyy hh:mm in the server's time zone, "jamais" for none.
std::string When(const google::protobuf::Timestamp& ts);
std::string KindLabel(parc::v1::DeviceKind kind);
std::string StateLabel(parc::v1::DeploymentState s);
std::string PackageStateLabel(parc::v1::PackageState s);

// The page around body: header with the operator and the sign-out form (caller may be null
// on the sign-in page).
Html Layout(const std::string& title, const Caller* caller, const std::string& csrf,
            const Html& body);
// Sends a page as text/html.
void SendHtml(httplib::Response& res, const Html& page);

// Horizontal bar chart of percentages (0-100), one bar per row, with optional links.
struct Bar {
  std::string label;
  double percent = 0;
  std::string href;
  std::string detail;
};
Html BarChart(const std::string& title, const std::vector<Bar>& bars);

// A sortable table: header links set ?tri=<key>&ordre=asc|desc; the rows are sorted here.
// rows hold the plain values (sorting, CSV), cells what is shown for each.
struct Column {
  std::string key;
  std::string label;
  bool numeric = false;
};
Html SortedTable(const httplib::Request& req, const std::string& base,
                 const std::vector<Column>& columns, std::vector<std::vector<std::string>> rows,
                 std::vector<std::vector<Html>> cells);
// The column a request sorts by (?tri=key&ordre=asc|desc): its index (-1: none), direction.
struct SortChoice {
  int column = -1;
  bool descending = false;
};
SortChoice RequestedSort(const httplib::Request& req, const std::vector<Column>& columns);
// A table whose rows already come in the chosen order (sorted by the store, for long lists);
// its header links sort again through base.
Html Table(const std::string& base, const std::vector<Column>& columns, SortChoice sort,
           const std::vector<std::vector<Html>>& cells);
// Plain values shown as they are (escaped), for SortedTable's cells.
std::vector<Html> TextCells(const std::vector<std::string>& values);

// A page that failed on the server's side: 500 with a short French message; the cause goes to
// the server's log (sampled), never to the browser.
void SendServerError(httplib::Response& res, absl::string_view page, const absl::Status& cause);

// A CSV download (UTF-8 with BOM, ';'), cells neutralised for spreadsheets.
void SendCsv(httplib::Response& res, const std::string& filename,
             const std::vector<std::string>& header,
             const std::vector<std::vector<std::string>>& rows);
bool WantsCsv(const httplib::Request& req);
std::string CookieValue(const httplib::Request& req, absl::string_view name);

}  // namespace parc::server::web
