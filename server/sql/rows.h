#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parc/v1/admin.pb.h"
#include "server/sql/sql.h"
#include "server/store.h"

// Rows read by several of the store's files: the columns selected and the readers of
// one row.
namespace parc::server::sql {

// The bytes of room a devices row is born with where the engine grows a row in its page
// (Connection::grows_rows_in_place): about what its first inventory adds to it, so that the
// row then fits where it is (SQLite schema 17, server/sqlite/schema.cc).
inline constexpr int64_t kDeviceRowRoom = 256;

inline constexpr char kEstablishmentColumns[] =
    "uai, name, type, category, sector, commune_code, commune_name, departement, academie, "
    "collectivite_kind, collectivite_code, collectivite_name, tags";
inline constexpr char kTokenColumns[] =
    "id, secret_hash, coalesce(uai, ''), created_at, expires_at, max_uses, uses, revoked_at, "
    "note, created_by, reenroll";
inline constexpr char kDeviceSelect[] =
    "SELECT d.id, d.serial, coalesce(d.uai, ''), coalesce(e.name, ''), "
    "coalesce(e.departement, ''), d.kind, d.kind_source, d.manufacturer, d.model, d.hostname, "
    "d.os, d.agent_version, d.enrolled_at, d.last_enrolled_at, c.last_seen_at, "
    "d.inventory_at, d.inventory_hash, d.software_hash, coalesce(s.package_count, 0), "
    "d.enroll_count "
    "FROM devices d LEFT JOIN establishments e ON e.uai = d.uai "
    "LEFT JOIN software_sets s ON s.hash = d.software_hash "
    "LEFT JOIN device_checkins c ON c.device_id = d.id ";

parc::v1::Establishment EstablishmentFromRow(const sql::Stmt& st);
EnrollmentTokenRecord TokenFromRow(const sql::Stmt& st);
parc::v1::Device DeviceFromRow(const sql::Stmt& st);
// "2026-11-29 12:00 UTC".
std::string FormatUtc(absl::Time t);
// The token with this id if its secret matches and it may enroll one more device now.
[[nodiscard]] absl::StatusOr<EnrollmentTokenRecord> UsableToken(sql::Connection* db,
                                                                const std::string& id,
                                                                const std::string& secret_hash,
                                                                absl::Time now);

}  // namespace parc::server::sql
