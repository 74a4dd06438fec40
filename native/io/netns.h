// Running setup code inside a named network namespace (/var/run/netns/NAME, as `ip netns add` makes them).
#pragma once
#include <functional>
#include <string>

namespace mipsec::io {

// Runs fn on a short-lived thread that first joins the namespace (empty name: the caller's own), so sockets
// and devices fn creates belong to it while the calling thread never changes namespace. Returns fn's error
// text, or why the namespace could not be entered; empty on success.
std::string run_in_netns(const std::string& name, const std::function<std::string()>& fn);

}  // namespace mipsec::io
