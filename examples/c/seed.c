/*
 * The seed page's program ("Multiple instances in a single process", written for NanoSSL) on
 * tlsplex's C API, step for step:
 *
 *   1. initialise the global context once (SSL_init + SSL_settings): tlsplex_context_new;
 *   2. spawn a thread per server, each with its own listening socket on its own port;
 *   3. in each, accept TCP connections (TCP_ACCEPT_SOCKET): accept(2);
 *   4. for each accepted connection, spawn a thread (startHttpsThread);
 *   5. in it, establish TLS (SSL_acceptConnection(socket, certStore)): tlsplex_accept,
 *      and answer HTTPS (HTTP/1.1, kept alive).
 *
 * Usage: seed DIR [PORT_A PORT_B [CONNECTIONS [HANDSHAKE_MS]]]
 *   DIR holds a.pem/a.key (port A's certificate) and b.pem/b.key (port B's); with
 *   DIR/clients-ca.pem, port B asks clients for a certificate from that CA.
 *   Ports default to 1440 and 1441. With CONNECTIONS, each server stops after accepting that
 *   many and the program frees everything and exits (for leak checkers); without, it runs on.
 *   HANDSHAKE_MS is the handshake timeout (default 2000).
 *
 * Build: make -C examples/c   (or see the Makefile's one cc line)
 * Check: lsof -nP -i4TCP:1440 | grep LISTEN; curl -k https://localhost:1440/
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tlsplex.h"

#define MAX_WORKERS 1024

static tlsplex_context *context; /* step 1: one for the whole process */

struct server {
  int port;
  tlsplex_cert_store *store;
  long connections; /* 0: forever */
  pthread_t thread;
};

struct worker {
  int socket;
  int port;
  tlsplex_cert_store *store;
};

static void report(int port, const char *what, tlsplex_result result) {
  printf("port %d: %s: %d %s\n", port, what, (int)result, tlsplex_result_message(result));
  fflush(stdout);
}

/* Reads one request head into `request`; 0 when the client is done (or the socket timed out). */
static size_t read_request(tlsplex_conn *conn, char *request, size_t size) {
  size_t have = 0;
  while (have < size - 1) {
    size_t got = 0;
    tlsplex_result result = tlsplex_conn_read(conn, (uint8_t *)request + have, size - 1 - have, &got);
    if (result != TLSPLEX_OK || got == 0) {
      return 0;
    }
    have += got;
    request[have] = '\0';
    if (strstr(request, "\r\n\r\n") != NULL) {
      return have;
    }
  }
  return 0;
}

/* Step 5: the handshake with this server's certificates, then HTTP/1.1 requests (kept alive
 * until the client says close or goes quiet for 30 s). */
static void *https_thread(void *arg) {
  struct worker *worker = arg;
  tlsplex_conn *conn = NULL;
  tlsplex_result result = tlsplex_accept(context, worker->socket, worker->store, &conn);
  if (result != TLSPLEX_OK) {
    report(worker->port, "handshake failed", result);
    close(worker->socket);
    free(worker);
    return NULL;
  }
  struct timeval idle = {30, 0};
  setsockopt(worker->socket, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  tlsplex_conn_info_t info;
  tlsplex_conn_info(conn, &info);
  char request[8192];
  while (read_request(conn, request, sizeof request) > 0) {
    int last = strstr(request, "Connection: close") != NULL || strstr(request, "HTTP/1.0") != NULL;
    char body[1024];
    int length = snprintf(body, sizeof body,
                          "hello from port %d over %s (%s, %s), alpn %s, sni %s, resumed %d, client %s\n",
                          worker->port, info.tls_version, info.cipher_suite,
                          info.key_exchange_group ? info.key_exchange_group : "-",
                          info.alpn ? info.alpn : "-", info.sni ? info.sni : "-", info.resumed,
                          info.client_subject ? info.client_subject : "-");
    char response[1400];
    int total = snprintf(response, sizeof response,
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s",
                         length, last ? "Connection: close\r\n" : "", body);
    result = tlsplex_conn_write(conn, (const uint8_t *)response, (size_t)total);
    report(worker->port, result == TLSPLEX_OK ? "served" : "write failed", result);
    if (result != TLSPLEX_OK || last) {
      break;
    }
  }
  tlsplex_conn_close(conn);
  tlsplex_conn_free(conn);
  close(worker->socket);
  free(worker);
  return NULL;
}

/* Steps 2 to 4: one listening socket, a thread per accepted connection. */
static void *server_thread(void *arg) {
  struct server *server = arg;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in address = {0};
  address.sin_family = AF_INET;
  address.sin_port = htons((uint16_t)server->port);
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 128) != 0) {
    perror("bind/listen");
    exit(1);
  }
  printf("port %d: listening\n", server->port);
  fflush(stdout);
  pthread_t workers[MAX_WORKERS];
  long started = 0;
  while (server->connections == 0 || started < server->connections) {
    int client = accept(listener, NULL, NULL);
    if (client < 0) {
      continue;
    }
    struct worker *worker = malloc(sizeof *worker);
    worker->socket = client;
    worker->port = server->port;
    worker->store = server->store;
    pthread_t thread;
    pthread_create(&thread, NULL, https_thread, worker);
    if (server->connections != 0 && started < MAX_WORKERS) {
      workers[started] = thread;
    } else {
      pthread_detach(thread);
    }
    started++;
  }
  for (long i = 0; i < started && i < MAX_WORKERS; i++) {
    pthread_join(workers[i], NULL);
  }
  close(listener);
  return NULL;
}

static tlsplex_cert_store *store_for(const char *dir, const char *name) {
  char cert[4096], key[4096];
  snprintf(cert, sizeof cert, "%s/%s.pem", dir, name);
  snprintf(key, sizeof key, "%s/%s.key", dir, name);
  tlsplex_cert_store *store = NULL;
  tlsplex_result result = tlsplex_cert_store_new(&store);
  if (result == TLSPLEX_OK) {
    result = tlsplex_cert_store_add_pem_files(store, cert, key);
  }
  if (result != TLSPLEX_OK) {
    fprintf(stderr, "%s: %s\n", cert, tlsplex_result_message(result));
    exit(1);
  }
  return store;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [PORT_A PORT_B [CONNECTIONS [HANDSHAKE_MS]]]\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int ports[2] = {argc > 3 ? atoi(argv[2]) : 1440, argc > 3 ? atoi(argv[3]) : 1441};
  long connections = argc > 4 ? atol(argv[4]) : 0;

  /* Step 1: the global context, before any server thread. */
  tlsplex_settings settings = {0};
  settings.handshake_timeout_ms = argc > 5 ? (uint32_t)atol(argv[5]) : 2000;
  settings.alpn = "http/1.1";
  tlsplex_result result = tlsplex_context_new(&settings, &context);
  if (result != TLSPLEX_OK) {
    fprintf(stderr, "context: %s\n", tlsplex_result_message(result));
    return 1;
  }
  struct server servers[2] = {
      {ports[0], store_for(dir, "a"), connections, 0},
      {ports[1], store_for(dir, "b"), connections, 0},
  };
  char ca[4096];
  snprintf(ca, sizeof ca, "%s/clients-ca.pem", dir);
  if (access(ca, R_OK) == 0) {
    result = tlsplex_cert_store_require_client_cert(servers[1].store, ca, NULL);
    if (result != TLSPLEX_OK) {
      fprintf(stderr, "%s: %s\n", ca, tlsplex_result_message(result));
      return 1;
    }
  }

  /* Step 2: a thread per server. */
  for (int i = 0; i < 2; i++) {
    pthread_create(&servers[i].thread, NULL, server_thread, &servers[i]);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(servers[i].thread, NULL);
  }
  for (int i = 0; i < 2; i++) {
    tlsplex_cert_store_free(servers[i].store);
  }
  tlsplex_context_free(context);
  return 0;
}
