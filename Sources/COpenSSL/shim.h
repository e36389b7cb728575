// OpenSSL's TLS client, for the etcd client's https:// endpoints (Debian's libssl-dev).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
