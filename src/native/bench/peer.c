/*
 * The far end for mechanisms.js: a plain blocking loopback client.
 *   peer read  PORT BUF          read until EOF, discard
 *   peer write PORT BYTES BUF    send BYTES, shut down writing, wait for EOF
 * Prints one JSON line: bytes moved, wall seconds, user and system CPU seconds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: peer read PORT BUF | peer write PORT BYTES BUF\n");
    return 2;
  }
  int writing = strcmp(argv[1], "write") == 0;
  long long total = writing ? atoll(argv[3]) : 0;
  size_t bufsz = (size_t)atoll(argv[writing ? 4 : 3]);
  char *buf = malloc(bufsz);
  for (size_t i = 0; i < bufsz; i++) buf[i] = (char)(i * 131 + 7);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[2]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("connect");
    return 1;
  }
  double t0 = now();
  long long moved = 0;
  if (writing) {
    while (moved < total) {
      size_t n = (size_t)(total - moved < (long long)bufsz ? total - moved : (long long)bufsz);
      ssize_t w = send(s, buf, n, MSG_NOSIGNAL);
      if (w <= 0) {
        perror("send");
        return 1;
      }
      moved += w;
    }
    shutdown(s, SHUT_WR);
    while (recv(s, buf, bufsz, 0) > 0) {
    }
  } else {
    for (;;) {
      ssize_t r = recv(s, buf, bufsz, 0);
      if (r < 0) {
        perror("recv");
        return 1;
      }
      if (r == 0) break;
      moved += r;
    }
  }
  double t1 = now();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"bytes\":%lld,\"secs\":%.6f,\"user\":%.6f,\"sys\":%.6f}\n", moved, t1 - t0,
         ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
  return 0;
}
