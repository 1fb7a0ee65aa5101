// The sandbox ("pause") process of the containerd fixture's image: holds the pod's namespaces, reaps
// children, exits 0 on SIGINT/SIGTERM. With any argument (e.g. --help) it prints what it is and exits 0.
// Linked statically: the image holds nothing but this file.
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void Reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

static void Quit(int sig) {
  (void)sig;
  _exit(0);
}

int main(int argc, char** argv) {
  if (argc > 1) {  // --help (or anything): say what this is instead of pausing
    static const char kUsage[] =
        "pause: the sandbox process of the test containerd fixture's pause image; takes no arguments,\n"
        "holds the pod's namespaces until SIGINT/SIGTERM.\n";
    (void)argv;
    return write(1, kUsage, sizeof kUsage - 1) < 0 ? 3 : 0;
  }
  struct sigaction quit = {0};
  quit.sa_handler = Quit;
  sigaction(SIGINT, &quit, NULL);
  sigaction(SIGTERM, &quit, NULL);
  struct sigaction reap = {0};
  reap.sa_handler = Reap;
  reap.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &reap, NULL);
  for (;;) pause();
}
