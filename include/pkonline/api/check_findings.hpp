// The findings of pkonline.check() that read the table and the server (src/api/check_findings.cpp):
// sizes and free disk space, a duration estimated from a timed sample read, transactions that
// would stall the job, replication, and what is attached to the table. Each reads catalogs and
// statistics as the caller, takes no lock stronger than ACCESS SHARE and changes nothing.
#pragma once

#include <string>
#include <vector>

#include "pkonline/api/api.hpp"

namespace pkonline::api {

// The operation check() was asked about, as far as the findings depend on it.
struct CheckedOperation {
  std::string operation;
  std::string column;                // add_int_pk / add_column: the new column
  bool copy = false;                 // add_int_pk, method => 'copy'
  bool unique = false;               // add_column, is_unique
  bool catalog_only = false;         // add_column with a fill that is not volatile: no row rewritten
  bool referencing = true;           // convert_pk_to_bigint
  std::vector<std::string> columns;  // set_primary_key; add_int_pk's pk_columns
  bool replace_unique = false;       // set_primary_key
  std::string args_json;             // check()'s args, as given (for pkonline.estimate())
};

void SizeAndDisk(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out);
void Duration(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out);
void Transactions(std::vector<Finding>& out);
// The WAL the operation writes (pkonline.estimate()) against max_wal_size, slots, archiving, standbys.
void Wal(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out);
void Replication(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out);
void Attached(unsigned relid, std::vector<Finding>& out);
// set_primary_key: NULLs and duplicates in the new key, and a UNIQUE constraint it makes redundant.
void KeyData(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out);
// A partitioned table: its partitions (how many, the largest) and, for add_int_pk, the key.
void Partitions(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out);

// Bytes the copy method writes besides the table: a second copy of the table and its indexes,
// and the new key's index. (AddIntPk refuses the copy method when they do not fit.)
double CopyMethodBytes(unsigned relid);

}  // namespace pkonline::api
