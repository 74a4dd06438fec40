#include "io/netns.h"
#include <fcntl.h>
#include <sched.h>
#include <cerrno>
#include <cstring>
#include <thread>
#include "io/fd.h"

namespace mipsec::io {

std::string run_in_netns(const std::string& name, const std::function<std::string()>& fn) {
  if (name.empty()) return fn();
  if (name.find('/') != std::string::npos || name == "." || name == "..")
    return "netns '" + name + "' is not a namespace name (give the NAME of /var/run/netns/NAME)";
  std::string result;
  std::thread helper([&] {
    const std::string path = "/var/run/netns/" + name;
    Fd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid()) {
      result = "netns '" + name + "': cannot open " + path + ": " + std::strerror(errno) +
               " (create it with `ip netns add " + name + "`)";
      return;
    }
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      result = "netns '" + name + "': setns failed: " + std::strerror(errno) + " (needs CAP_SYS_ADMIN)";
      return;
    }
    result = fn();
  });
  helper.join();
  return result;
}

}  // namespace mipsec::io
