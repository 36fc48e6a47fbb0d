// Where user-written code can run (see include/pkonline/pg/user_code.hpp).
#include "pkonline/pg/user_code.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"

extern "C" {
#include "postgres.h"
#include "storage/lmgr.h"
}

namespace pkonline::pg {

bool TableRunsUserCode(unsigned relid) {
  Call([&]() { LockRelationOid(relid, RowExclusiveLock); });
  return AsBool(Query(
      "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1::oid AND NOT t.tgisinternal "
      "  AND t.tgenabled IN ('A', 'R') AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e "
      "  JOIN pg_catalog.pg_extension x ON x.oid = e.refobjid AND x.extname = 'pkonline' "
      "  WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND e.objid = t.tgfoid "
      "  AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.deptype = 'e')) "
      "OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = $1::oid AND r.rulename <> '_RETURN' "
      "  AND r.ev_enabled IN ('A', 'R')) "
      "OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE ("
      "  (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid IN "
      "    (SELECT c.oid FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid)) "
      "  OR (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid IN "
      "    (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid)) "
      "  OR (d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid IN "
      "    (SELECT ad.oid FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid "
      "     AND a.attnum = ad.adnum WHERE ad.adrelid = $1::oid AND a.attgenerated <> '')) "
      "  OR (d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid IN "
      "    (SELECT p.oid FROM pg_catalog.pg_policy p WHERE p.polrelid = $1::oid))) "
      "  AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_operator'::pg_catalog.regclass, "
      "    'pg_catalog.pg_opclass'::pg_catalog.regclass, 'pg_catalog.pg_type'::pg_catalog.regclass) "
      "  AND d.refobjid >= 16384 "
      "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = d.refclassid AND e.objid = d.refobjid "
      "    AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.deptype = 'e'))",
      {V(static_cast<int64_t>(relid))}, true)
                    .scalar());
}

}  // namespace pkonline::pg
