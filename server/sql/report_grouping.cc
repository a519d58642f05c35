#include "server/sql/report_grouping.h"

#include <algorithm>
#include <numeric>

#include "common/status_macros.h"
#include "server/sql/scope_sql.h"

namespace parc::server::sql {

std::vector<size_t> EstablishmentGroups::ByKey() const {
  std::vector<size_t> order(groups.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return groups[a].key < groups[b].key; });
  return order;
}

absl::StatusOr<EstablishmentGroups> ReadEstablishmentGroups(Connection& db,
                                                            const std::string& group,
                                                            const std::string& label,
                                                            const std::string& parent,
                                                            const Scope& scope) {
  PARC_ASSIGN_OR_RETURN(Stmt st, db.Prepare(absl::StrCat("SELECT e.uai, ", group, ", ", label, ", ",
                                                         parent, " FROM establishments e WHERE ",
                                                         ScopeSql(db, scope, "e.uai", 1))));
  st.Bind(1, ScopeParam(db, scope));
  EstablishmentGroups out;
  absl::flat_hash_map<std::string, size_t> by_key;
  PARC_RETURN_IF_ERROR(ForEachRow(st, [&](const Stmt&) {
    std::string key = st.Text(1);
    auto [it, added] = by_key.try_emplace(key, out.groups.size());
    if (added) out.groups.push_back({std::move(key), "", "", 0});
    EstablishmentGroups::Group& g = out.groups[it->second];
    ++g.establishments;
    std::string l = st.Text(2), p = st.Text(3);
    if (l > g.label) g.label = std::move(l);
    if (p > g.parent) g.parent = std::move(p);
    out.group_of.emplace(st.Text(0), it->second);
  }));
  return out;
}

}  // namespace parc::server::sql
