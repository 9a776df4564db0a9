// The kernel's share of a request on this machine: a minimal HTTP/1.1 keep-alive responder
// (epoll, one recv and one send per request, no parsing beyond counting heads, no allocation)
// that burns a fixed CPU time per request in a loop with no memory footprint. bench/floor.sh
// runs it against wrk like bench/wsgi.sh runs the servers: what it reaches of 1/SPIN is the
// best any server can reach of an app's loop limit when the app's CPU time is all it adds.
//
// Usage: floor PORT SPIN_US [batch]   ("batch": answer a whole epoll batch after computing
// it, as mse-serve's pool hands responses over, instead of each request as it is read)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, World!";
static volatile unsigned long sink;
static unsigned long spin_iterations;

// A linear congruential step per iteration: CPU only, the same registers throughout.
static void spin(void) {
    unsigned long x = sink;
    for (unsigned long i = 0; i < spin_iterations; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    sink = x;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: floor PORT SPIN_US [batch]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    double spin_us = atof(argv[2]);
    int batch = argc > 3 && strcmp(argv[3], "batch") == 0;

    spin_iterations = 10000000;
    double t = seconds();
    spin();
    spin_iterations = (unsigned long)(spin_us * 1e-6 / ((seconds() - t) / 1e7));
    t = seconds();
    for (int k = 0; k < 1000; k++)
        spin();
    fprintf(stderr, "spin per request: %.2f us\n", (seconds() - t) * 1e3);

    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 1024)) {
        perror("floor: bind");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);

    struct epoll_event events[256];
    int pending[4096];
    char buf[8192];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1), npending = 0;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int c;
                while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r <= 0) {
                if (r == 0)
                    close(fd);
                continue;
            }
            for (ssize_t k = 3; k < r; k++) {
                if (buf[k] != '\n' || buf[k - 1] != '\r' || buf[k - 2] != '\n')
                    continue;
                spin();
                if (batch && npending < 4096)
                    pending[npending++] = fd;
                else
                    send(fd, RESPONSE, sizeof RESPONSE - 1, 0);
            }
        }
        for (int i = 0; i < npending; i++)
            send(pending[i], RESPONSE, sizeof RESPONSE - 1, 0);
    }
}
