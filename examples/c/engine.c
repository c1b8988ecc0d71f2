/*
 * The whole daemon inside a C program: tlsplex's engine started from a TOML config file, then
 * driven from standard input, one command per line:
 *
 *   reload        read the config file again and apply the difference
 *   stop NAME     stop the server called NAME (its connections drain)
 *   quit          drain and stop everything, free the engine, exit
 *
 * A server whose config says `handler = { type = "external", name = "hello" }` hands each
 * connection to the C function `hello` below (the seed's startHttpsThread), on a thread of its
 * own, handshake done.
 *
 * Usage: engine CONFIG.toml
 * Build: make -C examples/c engine
 */
#include <stdio.h>
#include <string.h>

#include "tlsplex.h"

/* One HTTP exchange on a connection tlsplex accepted and handshook. */
static void hello(void *greeting, tlsplex_conn *conn) {
  char request[8192];
  size_t have = 0, got = 0;
  while (have < sizeof request - 1 &&
         tlsplex_conn_read(conn, (uint8_t *)request + have, sizeof request - 1 - have, &got) ==
             TLSPLEX_OK &&
         got > 0) {
    have += got;
    request[have] = '\0';
    if (strstr(request, "\r\n\r\n") != NULL) {
      break;
    }
  }
  tlsplex_conn_info_t info;
  tlsplex_conn_info(conn, &info);
  char body[512];
  int length = snprintf(body, sizeof body, "%s from C over %s, sni %s\n", (const char *)greeting,
                        info.tls_version, info.sni ? info.sni : "-");
  char response[1024];
  int total = snprintf(response, sizeof response,
                       "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                       length, body);
  tlsplex_conn_write(conn, (const uint8_t *)response, (size_t)total);
  tlsplex_conn_close(conn);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CONFIG.toml\n", argv[0]);
    return 2;
  }
  char error[4096];
  tlsplex_engine *engine = NULL;
  static char greeting[] = "hello";
  tlsplex_handler handlers[] = {{"hello", hello, greeting}};
  tlsplex_result result = tlsplex_engine_start(argv[1], handlers, 1, error, sizeof error, &engine);
  if (result != TLSPLEX_OK) {
    printf("start failed: %d %s\n%s\n", (int)result, tlsplex_result_message(result), error);
    return 1;
  }
  printf("started\n");
  fflush(stdout);
  char line[512];
  while (fgets(line, sizeof line, stdin) != NULL) {
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, "reload") == 0) {
      error[0] = '\0';
      result = tlsplex_engine_reload(engine, error, sizeof error);
      printf("reload: %d %s%s%s\n", (int)result, tlsplex_result_message(result),
             error[0] ? "\n" : "", error);
    } else if (strncmp(line, "stop ", 5) == 0) {
      result = tlsplex_engine_stop_server(engine, line + 5);
      printf("stop %s: %d %s\n", line + 5, (int)result, tlsplex_result_message(result));
    } else if (strcmp(line, "quit") == 0) {
      break;
    }
    fflush(stdout);
  }
  result = tlsplex_engine_free(engine);
  printf("stopped: %d %s\n", (int)result, tlsplex_result_message(result));
  return result == TLSPLEX_OK ? 0 : 1;
}
