/*
 * examples/c/seed.c with OpenSSL 3 instead of tlsplex, for bench/c-seed.sh: the same program
 * (one SSL_CTX per server made once, a thread per server, a thread per connection, HTTP/1.1
 * kept alive), so the two libraries are compared and nothing else.
 *
 * Usage: seed_openssl DIR PORT_A PORT_B   (DIR/a.pem a.key b.pem b.key)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct server {
  int port;
  SSL_CTX *ctx;
};

struct worker {
  int socket;
  int port;
  SSL_CTX *ctx;
};

static size_t read_request(SSL *ssl, char *request, size_t size) {
  size_t have = 0;
  while (have < size - 1) {
    int got = SSL_read(ssl, request + have, (int)(size - 1 - have));
    if (got <= 0) {
      return 0;
    }
    have += (size_t)got;
    request[have] = '\0';
    if (strstr(request, "\r\n\r\n") != NULL) {
      return have;
    }
  }
  return 0;
}

static void *https_thread(void *arg) {
  struct worker *worker = arg;
  SSL *ssl = SSL_new(worker->ctx);
  SSL_set_fd(ssl, worker->socket);
  if (SSL_accept(ssl) == 1) {
    char request[8192];
    while (read_request(ssl, request, sizeof request) > 0) {
      int last = strstr(request, "Connection: close") != NULL;
      char body[256];
      int length = snprintf(body, sizeof body, "hello from port %d over %s (%s)\n", worker->port,
                            SSL_get_version(ssl), SSL_get_cipher_name(ssl));
      char response[512];
      int total = snprintf(response, sizeof response,
                           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s",
                           length, last ? "Connection: close\r\n" : "", body);
      if (SSL_write(ssl, response, total) <= 0 || last) {
        break;
      }
    }
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  close(worker->socket);
  free(worker);
  return NULL;
}

static void *server_thread(void *arg) {
  struct server *server = arg;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in address = {0};
  address.sin_family = AF_INET;
  address.sin_port = htons((uint16_t)server->port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1024) != 0) {
    perror("bind/listen");
    exit(1);
  }
  printf("port %d: listening\n", server->port);
  fflush(stdout);
  for (;;) {
    int client = accept(listener, NULL, NULL);
    if (client < 0) {
      continue;
    }
    struct worker *worker = malloc(sizeof *worker);
    worker->socket = client;
    worker->port = server->port;
    worker->ctx = server->ctx;
    pthread_t thread;
    pthread_create(&thread, NULL, https_thread, worker);
    pthread_detach(thread);
  }
  return NULL;
}

static SSL_CTX *context_for(const char *dir, const char *name) {
  char cert[4096], key[4096];
  snprintf(cert, sizeof cert, "%s/%s.pem", dir, name);
  snprintf(key, sizeof key, "%s/%s.key", dir, name);
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    exit(1);
  }
  return ctx;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DIR PORT_A PORT_B\n", argv[0]);
    return 2;
  }
  /* OpenSSL writes with write(2): a client that resets would kill the process by SIGPIPE
   * (tlsplex sends with MSG_NOSIGNAL and needs no such line). */
  signal(SIGPIPE, SIG_IGN);
  OPENSSL_init_ssl(0, NULL); /* SSL_init */
  struct server servers[2] = {{atoi(argv[2]), context_for(argv[1], "a")},
                              {atoi(argv[3]), context_for(argv[1], "b")}};
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) {
    pthread_create(&threads[i], NULL, server_thread, &servers[i]);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(threads[i], NULL);
  }
  return 0;
}
