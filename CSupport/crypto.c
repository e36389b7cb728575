// OpenSSL (libcrypto 3) wrappers for the wire protocol's primitives: HMAC-SHA256 over several parts,
// HKDF-SHA256, SHA-256, ChaCha20-Poly1305 with associated data, constant-time comparison, random bytes.
// Thin by design: each function is one primitive with fixed parameters; keys, nonces and policy stay in
// Swift (Sources/FGBI/Wire/Cryptography.swift). Every function returns 0 on success, -1 on failure.
#define _GNU_SOURCE
#include "CSupport.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <limits.h>
#include <string.h>

static EVP_MAC *hmac_algorithm;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void fetch_hmac(void) { hmac_algorithm = EVP_MAC_fetch(NULL, "HMAC", NULL); }

int CSupport_hmac_sha256(const void *key, size_t key_length, const void *const *parts, const size_t *lengths,
                         size_t count, uint8_t out[32]) {
    pthread_once(&hmac_once, fetch_hmac);
    if (hmac_algorithm == NULL) return -1;
    EVP_MAC_CTX *context = EVP_MAC_CTX_new(hmac_algorithm);
    if (context == NULL) return -1;
    char digest[] = "SHA256";
    OSSL_PARAM parameters[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
    int ok = EVP_MAC_init(context, key, key_length, parameters);
    for (size_t i = 0; ok && i < count; i++) ok = EVP_MAC_update(context, parts[i], lengths[i]);
    size_t written = 0;
    if (ok) ok = EVP_MAC_final(context, out, &written, 32) && written == 32;
    EVP_MAC_CTX_free(context);
    return ok ? 0 : -1;
}

int CSupport_hkdf_sha256(const void *key, size_t key_length, const void *salt, size_t salt_length, const void *info,
                         size_t info_length, uint8_t *out, size_t out_length) {
    if (salt_length > INT_MAX || key_length > INT_MAX || info_length > INT_MAX) return -1;
    EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (context == NULL) return -1;
    size_t length = out_length;
    int ok = EVP_PKEY_derive_init(context) > 0 && EVP_PKEY_CTX_set_hkdf_md(context, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_salt(context, salt, (int)salt_length) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_key(context, key, (int)key_length) > 0 &&
             EVP_PKEY_CTX_add1_hkdf_info(context, info, (int)info_length) > 0 &&
             EVP_PKEY_derive(context, out, &length) > 0 && length == out_length;
    EVP_PKEY_CTX_free(context);
    return ok ? 0 : -1;
}

int CSupport_sha256(const void *data, size_t length, uint8_t out[32]) {
    unsigned int written = 0;
    return EVP_Digest(data, length, out, &written, EVP_sha256(), NULL) && written == 32 ? 0 : -1;
}

/// Encrypts `length` bytes of `in` to `out` (same length) and writes the 16-byte tag.
int CSupport_chacha20_poly1305_seal(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_length,
                                    const void *in, size_t length, uint8_t *out, uint8_t tag[16]) {
    if (length > INT_MAX || aad_length > INT_MAX) return -1;  // EVP lengths are int
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    if (context == NULL) return -1;
    int written = 0, final_written = 0;
    int ok = EVP_EncryptInit_ex(context, EVP_chacha20_poly1305(), NULL, NULL, NULL) &&
             EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) &&
             EVP_EncryptInit_ex(context, NULL, NULL, key, nonce) &&
             (aad_length == 0 || EVP_EncryptUpdate(context, NULL, &written, aad, (int)aad_length)) &&
             (length == 0 || EVP_EncryptUpdate(context, out, &written, in, (int)length)) &&
             EVP_EncryptFinal_ex(context, out + (length == 0 ? 0 : written), &final_written) &&
             EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, tag);
    EVP_CIPHER_CTX_free(context);
    return ok ? 0 : -1;
}

/// The ChaCha20-Poly1305 tag of no plaintext with the concatenation of `count` parts as associated data: a
/// one-time Poly1305 authenticator under `key` and `nonce` (RFC 8439), for frames sent in clear.
int CSupport_chacha20_poly1305_tag(const uint8_t key[32], const uint8_t nonce[12], const void *const *parts,
                                   const size_t *lengths, size_t count, uint8_t tag[16]) {
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    if (context == NULL) return -1;
    int written = 0, final_written = 0;
    uint8_t none[1];
    int ok = EVP_EncryptInit_ex(context, EVP_chacha20_poly1305(), NULL, NULL, NULL) &&
             EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) &&
             EVP_EncryptInit_ex(context, NULL, NULL, key, nonce);
    for (size_t i = 0; ok && i < count; i++) {
        const uint8_t *part = parts[i];
        size_t left = lengths[i];
        while (ok && left > 0) {  // EVP lengths are int: long parts go in slices
            int slice = left > (1u << 30) ? (1 << 30) : (int)left;
            ok = EVP_EncryptUpdate(context, NULL, &written, part, slice);
            part += slice;
            left -= (size_t)slice;
        }
    }
    ok = ok && EVP_EncryptFinal_ex(context, none, &final_written) &&
         EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, tag);
    EVP_CIPHER_CTX_free(context);
    return ok ? 0 : -1;
}

/// Decrypts and authenticates; -1 when the tag does not match (nothing of `out` may be used then).
int CSupport_chacha20_poly1305_open(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_length,
                                    const void *in, size_t length, const uint8_t tag[16], uint8_t *out) {
    if (length > INT_MAX || aad_length > INT_MAX) return -1;  // EVP lengths are int
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    if (context == NULL) return -1;
    int written = 0, final_written = 0;
    uint8_t expected[16];
    memcpy(expected, tag, 16);
    int ok = EVP_DecryptInit_ex(context, EVP_chacha20_poly1305(), NULL, NULL, NULL) &&
             EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) &&
             EVP_DecryptInit_ex(context, NULL, NULL, key, nonce) &&
             (aad_length == 0 || EVP_DecryptUpdate(context, NULL, &written, aad, (int)aad_length)) &&
             (length == 0 || EVP_DecryptUpdate(context, out, &written, in, (int)length)) &&
             EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, 16, expected) &&
             EVP_DecryptFinal_ex(context, out + (length == 0 ? 0 : written), &final_written) > 0;
    EVP_CIPHER_CTX_free(context);
    return ok ? 0 : -1;
}

int CSupport_constant_time_equal(const void *a, const void *b, size_t length) {
    return CRYPTO_memcmp(a, b, length) == 0 ? 1 : 0;
}

int CSupport_random_bytes(void *out, size_t length) {
    if (length > INT_MAX) return -1;
    return RAND_bytes(out, (int)length) == 1 ? 0 : -1;
}
