// Tells whether the client of the request being handled has gone: cpp-httplib 0.11 gives handlers no
// socket, so the probe finds the connection's descriptor by its addresses and peeks at it.
#pragma once

#include <string>

namespace troupe::net {

/// Built in a handler (or content provider) from the request's addresses; cheap to query often.
class connection_probe {
 public:
  connection_probe(std::string remote_addr, int remote_port, int local_port);

  /// True once the peer has closed or reset the connection. False while it is open, and when the
  /// descriptor could not be found (never a false alarm).
  bool client_gone();

 private:
  int find_fd() const;

  std::string remote_addr_;
  int remote_port_;
  int local_port_;
  int fd_ = -2;  // -2: not looked up yet; -1: not found
};

}  // namespace troupe::net
