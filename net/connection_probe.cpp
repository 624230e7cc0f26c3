// Finds a connection's socket among the process's descriptors and checks it for a closed peer.
#include "net/connection_probe.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

namespace troupe::net {

namespace {

/// The port and numeric address of a socket address; port -1 when it is not IPv4 or IPv6.
std::pair<int, std::string> port_and_addr(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
    return {ntohs(a.sin_port), buf};
  }
  if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof buf);
    return {ntohs(a.sin6_port), buf};
  }
  return {-1, {}};
}

}  // namespace

connection_probe::connection_probe(std::string remote_addr, int remote_port, int local_port)
    : remote_addr_(std::move(remote_addr)), remote_port_(remote_port), local_port_(local_port) {}

int connection_probe::find_fd() const {
  if (remote_port_ <= 0 || local_port_ <= 0) return -1;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t n = sizeof local;
    if (getsockname(int(fd), reinterpret_cast<sockaddr*>(&local), &n) != 0) continue;
    if (port_and_addr(local).first != local_port_) continue;
    n = sizeof peer;
    if (getpeername(int(fd), reinterpret_cast<sockaddr*>(&peer), &n) != 0) continue;
    auto [port, addr] = port_and_addr(peer);
    if (port == remote_port_ && addr == remote_addr_) {
      found = int(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

bool connection_probe::client_gone() {
  if (fd_ == -2) fd_ = find_fd();
  if (fd_ < 0) return false;
  pollfd p{fd_, short(POLLIN | POLLRDHUP), 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return true;
  if (p.revents & POLLIN) {
    char c;
    const ssize_t got = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0) return true;
    if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
  }
  return false;
}

}  // namespace troupe::net
