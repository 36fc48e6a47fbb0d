# pkonline — PGXS build. `make && make install`, then `make installcheck` against a running server.
EXTENSION  = pkonline
MODULE_big = pkonline
DATA       = $(wildcard sql/pkonline--*.sql)

SRCS = $(wildcard src/*.cpp src/*/*.cpp)
OBJS = $(SRCS:.cpp=.o)

# pg_regress: sql/<name>.sql -> expected/<name>.out
REGRESS      = errors check report add_int_pk add_int_pk_copy partitioned add_column add_column_copy set_primary_key convert_pk convert_pk_copy control concurrent_ddl
REGRESS_OPTS = --load-extension=pkonline
# pg_isolation_regress: test/isolation/specs/<name>.spec -> test/isolation/expected/<name>.out
ISOLATION      = check_waits backfill_dml partitioned_dml copy_dml add_column_dml set_pk_dml convert_dml lock_retry cancel_waits throttle
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=pkonline
# TAP: test/t/*.pl, PostgreSQL::Test::Cluster — throwaway clusters of their own, run as a
# non-root user: `make installcheck TAP=1` (test/run.sh does).
ifdef TAP
TAP_TESTS   = 1
endif
PROVE_TESTS = test/t/*.pl
# `make installcheck` against a DBA's running server: first say in one line what it lacks, if
# anything, instead of a diff (test/installcheck_preflight.sh).
REGRESS_PREP = $(if $(strip $(REGRESS)$(ISOLATION)),installcheck-preflight,)

PG_CONFIG ?= pg_config
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-register -Wno-unused-parameter -Wno-missing-field-initializers \
              -fvisibility=hidden -I$(CURDIR)/include \
              "-DPGDLLEXPORT=__attribute__((visibility(\"default\")))"
SHLIB_LINK += -lstdc++ -Wl,--version-script=$(CURDIR)/exports.map

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Server headers as system headers: warnings speak only of our code.
override CPPFLAGS := $(patsubst -I%,-isystem %,$(CPPFLAGS))
# Rebuild objects when a header they include changes.
override CXXFLAGS += -MMD -MP
-include $(OBJS:.o=.d)
EXTRA_CLEAN += $(OBJS:.o=.d)
# Debian builds with LLVM bitcode; clang needs our C++ flags too.
COMPILE.cxx.bc += -std=c++17 -Wno-register -I$(CURDIR)/include

.PHONY: test demo format installcheck-preflight
installcheck-preflight:
	@bash $(CURDIR)/test/installcheck_preflight.sh
test:
	bash test/run.sh
demo:
	bash bench/demo.sh
format:
	clang-format -i $(SRCS) $(wildcard include/pkonline/*.hpp include/pkonline/*/*.hpp test/unit/*.cpp)
