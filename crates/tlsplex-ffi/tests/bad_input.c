/*
 * Bad input from C: every call answers with a result code and a message, never a crash.
 * Run by tests/bad_input.rs (also under AddressSanitizer). Prints one line per check; exits
 * non-zero at the first result that is not the expected one.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tlsplex.h"

static int failures = 0;

static void expect(const char *what, tlsplex_result got, tlsplex_result wanted) {
  const char *message = tlsplex_result_message(got);
  printf("%s: %d %s\n", what, (int)got, message ? message : "(null)");
  if (got != wanted || message == NULL || strlen(message) == 0) {
    printf("  expected %d\n", (int)wanted);
    failures++;
  }
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  char cert[4096], key[4096];
  snprintf(cert, sizeof cert, "%s/a.pem", dir);
  snprintf(key, sizeof key, "%s/a.key", dir);

  tlsplex_context *context = NULL;
  tlsplex_cert_store *store = NULL;
  tlsplex_conn *conn = NULL;
  uint8_t buffer[16];
  size_t got = 0;

  expect("context_new(out = NULL)", tlsplex_context_new(NULL, NULL), TLSPLEX_NULL_ARGUMENT);
  tlsplex_settings bad_version = {0};
  bad_version.min_tls_version = 11;
  expect("context_new(min_tls_version = 11)", tlsplex_context_new(&bad_version, &context),
         TLSPLEX_INVALID_ARGUMENT);
  expect("context_new(defaults)", tlsplex_context_new(NULL, &context), TLSPLEX_OK);
  expect("cert_store_new(out = NULL)", tlsplex_cert_store_new(NULL), TLSPLEX_NULL_ARGUMENT);
  expect("cert_store_new", tlsplex_cert_store_new(&store), TLSPLEX_OK);

  expect("add_pem_files(cert = NULL)", tlsplex_cert_store_add_pem_files(store, NULL, key),
         TLSPLEX_NULL_ARGUMENT);
  expect("add_pem_files(missing file)",
         tlsplex_cert_store_add_pem_files(store, "/nonexistent/cert.pem", key),
         TLSPLEX_FILE_UNREADABLE);
  expect("add_pem_files(key as cert)", tlsplex_cert_store_add_pem_files(store, key, key),
         TLSPLEX_BAD_PEM);
  const char *junk = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
  expect("add_pem(invalid PEM)",
         tlsplex_cert_store_add_pem(store, (const uint8_t *)junk, strlen(junk), (const uint8_t *)junk,
                                    strlen(junk)),
         TLSPLEX_BAD_PEM);
  expect("add_pem(zero length)",
         tlsplex_cert_store_add_pem(store, (const uint8_t *)junk, 0, (const uint8_t *)junk, 1),
         TLSPLEX_INVALID_ARGUMENT);
  expect("add_pem(NULL buffer)", tlsplex_cert_store_add_pem(store, NULL, 10, NULL, 10),
         TLSPLEX_NULL_ARGUMENT);

  int sockets[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sockets);
  expect("accept(empty store)", tlsplex_accept(context, sockets[0], store, &conn),
         TLSPLEX_NO_CERTIFICATES);
  expect("add_pem_files", tlsplex_cert_store_add_pem_files(store, cert, key), TLSPLEX_OK);

  int file = open(cert, O_RDONLY);
  expect("accept(fd of a file)", tlsplex_accept(context, file, store, &conn), TLSPLEX_NOT_A_SOCKET);
  close(file);
  expect("accept(fd -1)", tlsplex_accept(context, -1, store, &conn), TLSPLEX_INVALID_ARGUMENT);
  expect("accept(closed fd)", tlsplex_accept(context, 1000, store, &conn), TLSPLEX_INVALID_ARGUMENT);
  expect("accept(out = NULL)", tlsplex_accept(context, sockets[0], store, NULL), TLSPLEX_NULL_ARGUMENT);
  expect("accept(context = NULL)", tlsplex_accept(NULL, sockets[0], store, &conn),
         TLSPLEX_NULL_ARGUMENT);
  expect("accept(store as context)",
         tlsplex_accept((const tlsplex_context *)store, sockets[0], store, &conn),
         TLSPLEX_INVALID_HANDLE);
  expect("accept(made-up handle)",
         tlsplex_accept((const tlsplex_context *)(uintptr_t)0x12345, sockets[0], store, &conn),
         TLSPLEX_INVALID_HANDLE);
  /* The peer closes at once: the handshake sees the end of the stream. */
  close(sockets[1]);
  expect("accept(peer gone)", tlsplex_accept(context, sockets[0], store, &conn), TLSPLEX_PEER_CLOSED);
  close(sockets[0]);

  expect("conn_read(NULL conn)", tlsplex_conn_read(NULL, buffer, sizeof buffer, &got),
         TLSPLEX_NULL_ARGUMENT);
  expect("conn_read(made-up conn)",
         tlsplex_conn_read((tlsplex_conn *)(uintptr_t)0x13, buffer, sizeof buffer, &got),
         TLSPLEX_INVALID_HANDLE);
  expect("conn_write(context as conn)",
         tlsplex_conn_write((tlsplex_conn *)context, buffer, sizeof buffer), TLSPLEX_INVALID_HANDLE);
  expect("conn_info(NULL)", tlsplex_conn_info(NULL, NULL), TLSPLEX_NULL_ARGUMENT);

  expect("cert_store_free", tlsplex_cert_store_free(store), TLSPLEX_OK);
  expect("cert_store_free(again)", tlsplex_cert_store_free(store), TLSPLEX_INVALID_HANDLE);
  expect("add_pem_files(freed store)", tlsplex_cert_store_add_pem_files(store, cert, key),
         TLSPLEX_INVALID_HANDLE);
  expect("context_free", tlsplex_context_free(context), TLSPLEX_OK);
  expect("accept(freed context)", tlsplex_accept(context, 0, store, &conn), TLSPLEX_INVALID_HANDLE);
  expect("context_free(again)", tlsplex_context_free(context), TLSPLEX_INVALID_HANDLE);
  expect("context_free(NULL)", tlsplex_context_free(NULL), TLSPLEX_OK);
  expect("result_message(unknown code)", (tlsplex_result)12345, (tlsplex_result)12345);

  printf("%d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
