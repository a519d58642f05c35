#include "server/sql/rows.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "server/sql/time_util.h"

namespace parc::server::sql {

parc::v1::Establishment EstablishmentFromRow(const Stmt& st) {
  parc::v1::Establishment e;
  e.set_uai(st.Text(0));
  e.set_name(st.Text(1));
  e.set_type(st.Text(2));
  e.set_category(st.Text(3));
  e.set_sector(st.Text(4));
  e.set_commune_code(st.Text(5));
  e.set_commune_name(st.Text(6));
  e.set_departement(st.Text(7));
  e.set_academie(st.Text(8));
  e.set_collectivite_kind(st.Text(9));
  e.set_collectivite_code(st.Text(10));
  e.set_collectivite_name(st.Text(11));
  std::string tags = st.Text(12);
  if (!tags.empty()) {
    for (absl::string_view t : absl::StrSplit(tags, ',')) e.add_tags(std::string(t));
  }
  return e;
}

EnrollmentTokenRecord TokenFromRow(const Stmt& st) {
  EnrollmentTokenRecord t;
  t.id = st.Text(0);
  t.secret_hash = st.Text(1);
  t.uai = st.Text(2);
  t.created_at = FromUnix(st.Int(3));
  t.expires_at = FromUnix(st.Int(4));
  t.max_uses = U32(st.Int(5));
  t.uses = U32(st.Int(6));
  if (!st.IsNull(7)) t.revoked_at = FromUnix(st.Int(7));
  t.note = st.Text(8);
  t.created_by = st.Text(9);
  t.reenroll = st.Int(10) != 0;
  return t;
}

parc::v1::Device DeviceFromRow(const Stmt& st) {
  parc::v1::Device d;
  d.set_id(st.Text(0));
  d.set_serial(st.Text(1));
  d.set_uai(st.Text(2));
  d.set_establishment_name(st.Text(3));
  d.set_departement(st.Text(4));
  d.set_kind(static_cast<parc::v1::DeviceKind>(st.Int(5)));
  d.set_kind_source(st.Text(6));
  d.set_manufacturer(st.Text(7));
  d.set_model(st.Text(8));
  d.set_hostname(st.Text(9));
  d.set_os(st.Text(10));
  d.set_agent_version(st.Text(11));
  SetTimestamp(d.mutable_enrolled_at(), st.Int(12));
  SetTimestamp(d.mutable_last_enrolled_at(), st.Int(13));
  if (!st.IsNull(14)) SetTimestamp(d.mutable_last_seen_at(), st.Int(14));
  if (!st.IsNull(15)) SetTimestamp(d.mutable_inventory_at(), st.Int(15));
  d.set_inventory_hash(st.Text(16));
  d.set_software_hash(st.Text(17));
  d.set_software_packages(U32(st.Int(18)));
  d.set_enroll_count(U32(st.Int(19)));
  return d;
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", t, absl::UTCTimeZone());
}

absl::StatusOr<EnrollmentTokenRecord> UsableToken(sql::Connection* db, const std::string& id,
                                                  const std::string& secret_hash, absl::Time now) {
  PARC_ASSIGN_OR_RETURN(
      Stmt tok,
      db->Prepare(absl::StrCat("SELECT ", kTokenColumns, " FROM enrollment_tokens WHERE id = ?")));
  tok.Bind(1, id);
  PARC_ASSIGN_OR_RETURN(bool found, tok.Step());
  EnrollmentTokenRecord token;
  if (found) token = TokenFromRow(tok);
  if (!found || !common::ConstantTimeEquals(token.secret_hash, secret_hash)) {
    return absl::UnauthenticatedError("enrollment token not recognized");
  }
  if (token.revoked_at.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "enrollment token ", token.id, " was revoked on ", FormatUtc(*token.revoked_at)));
  }
  if (now >= token.expires_at) {
    return absl::UnauthenticatedError(
        absl::StrCat("enrollment token ", token.id, " expired on ", FormatUtc(token.expires_at)));
  }
  if (token.max_uses > 0 && token.uses >= token.max_uses) {
    return absl::PermissionDeniedError(absl::StrCat("enrollment token ", token.id,
                                                    " has already been used ", token.uses,
                                                    " times, its maximum"));
  }
  return token;
}

}  // namespace parc::server::sql
