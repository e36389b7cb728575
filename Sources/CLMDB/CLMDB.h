// LMDB (Debian liblmdb-dev), for the in-process database example. Its API is plain functions, so a system
// library module is enough; nothing here is wrapped.
#include <lmdb.h>
