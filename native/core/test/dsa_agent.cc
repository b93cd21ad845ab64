// dsa-agent: the stand-in DSA device of process_agent.h as a program of its own, so that tests can
// run the library's real /dev/dsa path (open, NOOP probe, write() submission, completion records
// written into the client's memory from outside, page faults, wedged queues) in a Node process:
//
//   dsa-agent --client PID [--pagemap-faults] [--wedge | --wedge-after N] [--fail-every N]
//             [--wq-size N] [--latency-us N]
//             FIFO[=ERRORS_FILE] ...
//
// One child per FIFO (a queue's "device node"), each serving it for the client process; ERRORS_FILE
// is the device's sysfs 'errors' file, rewritten when a full dedicated queue drops a descriptor.
// Prints "ready" once every FIFO is open, and runs until the client or its own parent ends (or it
// is killed); its children die with it. Reaching the client's memory needs ptrace access to it
// (root, or Yama's ptrace_scope 0): without it the agent says so and exits with 3 before "ready".
#include <sys/uio.h>

// Built by the tests that use it (test/engine/dsa-agent.test.ts), never shipped.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "process_agent.h"

namespace {

int usage(const char* why) {
  std::fprintf(stderr,
               "dsa-agent: %s\nusage: dsa-agent --client PID [--pagemap-faults] [--wedge | --wedge-after N] "
               "[--fail-every N] [--wq-size N] "
               "[--latency-us N] FIFO[=ERRORS_FILE] ...\n",
               why);
  return 2;
}

// Whether this process may write the client's memory (what the device does through the IOMMU):
// reads one byte of the client's first mapping with process_vm_readv, which needs the same ptrace
// access as process_vm_writev. "" if it may, else why not.
std::string client_access(pid_t client) {
  std::ifstream maps("/proc/" + std::to_string(client) + "/maps");
  unsigned long long start = 0;
  std::string line;
  if (!std::getline(maps, line) || std::sscanf(line.c_str(), "%llx-", &start) != 1)
    return "cannot read /proc/" + std::to_string(client) + "/maps (no such process, or no ptrace access to it)";
  char byte = 0;
  iovec l{&byte, 1};
  iovec r{reinterpret_cast<void*>(static_cast<uintptr_t>(start)), 1};
  if (process_vm_readv(client, &l, 1, &r, 1, 0) == 1) return "";
  return std::string("no ptrace access to process ") + std::to_string(client) + " (" + std::strerror(errno) +
         "): run as root, or with Yama's ptrace_scope 0";
}

volatile sig_atomic_t g_stop = 0;
void on_term(int) { g_stop = 1; }

// Kills the serving children and reaps them: an orphan's zombie is reaped only where PID 1 does.
int finish(const std::vector<pid_t>& children, int code) {
  for (pid_t c : children) kill(c, SIGKILL);
  for (pid_t c : children) waitpid(c, nullptr, 0);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  dmacopy_test::ProcessAgentOptions o;
  pid_t client = 0;
  std::vector<std::string> fifos;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> long { return i + 1 < argc ? std::strtol(argv[++i], nullptr, 10) : -1; };
    if (a == "--client") client = pid_t(value());
    else if (a == "--pagemap-faults") o.pagemap_faults = true;
    else if (a == "--wedge") o.wedge = true;
    else if (a == "--wedge-after") o.wedge = true, o.wedge_after = uint64_t(value());
    else if (a == "--fail-every") o.fail_every = uint32_t(value());
    else if (a == "--wq-size") o.wq_size = uint32_t(value());
    else if (a == "--latency-us") o.latency_us = uint32_t(value());
    else if (a.rfind("--", 0) == 0) return usage(("unknown option " + a).c_str());
    else fifos.push_back(a);
  }
  if (client <= 0) return usage("--client PID is required");
  if (fifos.empty()) return usage("no FIFO given");
  // Ends with whoever started it (a test runner killed mid-test must not leave agents behind).
  const pid_t starter = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != starter) return 1;
  const std::string denied = client_access(client);
  if (!denied.empty()) {
    std::fprintf(stderr, "dsa-agent: %s\n", denied.c_str());
    return 3;
  }

  const pid_t parent = getpid();
  std::vector<pid_t> children;
  for (const std::string& spec : fifos) {
    const size_t eq = spec.find('=');
    const std::string fifo = spec.substr(0, eq);
    dmacopy_test::ProcessAgentOptions mine = o;
    if (eq != std::string::npos) mine.errors_path = spec.substr(eq + 1);
    int ready[2];
    if (pipe(ready) != 0) return 1;
    const pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the agent
      if (getppid() != parent) _exit(1);
      ::close(ready[0]);
      const int fd = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);  // RDWR: never sees EOF
      const char ok = fd >= 0 ? 1 : 0;
      (void)!::write(ready[1], &ok, 1);
      ::close(ready[1]);
      if (fd < 0) _exit(2);
      dmacopy_test::ProcessAgent::serve_for(fd, client, mine);
    }
    ::close(ready[1]);
    char ok = 0;
    const bool opened = ::read(ready[0], &ok, 1) == 1 && ok == 1;
    ::close(ready[0]);
    children.push_back(pid);
    if (!opened) {
      std::fprintf(stderr, "dsa-agent: cannot open %s\n", fifo.c_str());
      return finish(children, 1);
    }
  }
  std::printf("ready\n");
  std::fflush(stdout);
  // Until the client ends or SIGTERM comes (SIGKILL: the children die with this process, by
  // PDEATHSIG); a child that ended is a device gone, and says so.
  signal(SIGTERM, on_term);
  while (!g_stop) {
    int status = 0;
    const pid_t gone = waitpid(-1, &status, WNOHANG);
    if (gone > 0) std::fprintf(stderr, "dsa-agent: the child serving a queue ended (status %d)\n", status);
    if (kill(client, 0) != 0 && errno == ESRCH) break;
    usleep(20000);
  }
  return finish(children, 0);
}
