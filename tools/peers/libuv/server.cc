// Peer: the echo server on libuv (Debian's libuv1-dev), a yardstick for the ladder.
//
// Not a lesson: what a user would write instead of their own loop, written the
// way libuv is meant to be used, so that the comparison in docs/results.md is
// fair. The contract is the stages' (flags, `listening on HOST:PORT`, SIGINT/SIGTERM
// -> summary, exit 0), and so is the memory policy: one fixed buffer per
// connection, and no reading while it is not yet written back.
//
// Per message: libuv reads once per readiness event (a short read means drained),
// and uv_try_write() sends the echo at once from the same buffer. Only when the
// socket's send buffer is full does the rest go through uv_write(), with reading
// stopped until its callback: the only case that touches epoll interest.
//
// Flags, SIGPIPE, the fd limit and the listening socket are set up as for every
// peer (peer_main.h: the stages' own listen_or_exit, same backlog,
// SO_REUSEADDR, messages); accepting, reading, writing and signals are libuv's.
#include <uv.h>

#include <csignal>
#include <cstdlib>
#include <memory>

#include "stages/common/common.h"
#include "tools/peers/peer_main.h"

namespace {

constexpr char kAbout[] = "Peer: an echo server on libuv (uv_read_start/uv_try_write).";

struct Server {
  uv_loop_t* loop;
  const echo::Options& options;
  echo::Stats& stats;
};

// handle is the first member, so a uv_stream_t* of ours is a Connection*.
struct Connection {
  uv_tcp_t handle{};
  Server* server = nullptr;
  std::unique_ptr<char[]> buffer;  // options.buffer_size bytes
  uv_write_t write{};              // the one write in flight (send buffer was full)
  std::size_t writing = 0;         // its length
};

Connection* connection_of(uv_handle_t* handle) {
  return reinterpret_cast<Connection*>(handle);
}

void on_closed(uv_handle_t* handle) {
  delete connection_of(handle);
}

void close_connection(Connection* c) {
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->handle))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), on_closed);
  }
}

// libuv asks for a buffer before each read: always the connection's own, which is
// free whenever reading is on (reading stops while a write holds it).
void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  Connection* c = connection_of(handle);
  *buf = uv_buf_init(c->buffer.get(),
                     static_cast<unsigned int>(c->server->options.buffer_size));
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

void on_written(uv_write_t* req, int status) {
  Connection* c = static_cast<Connection*>(req->data);
  if (status == 0) c->server->stats.add_bytes(c->writing);
  if (status < 0 || uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), on_alloc,
                                  on_read) != 0) {
    close_connection(c);
  }
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Connection* c = connection_of(reinterpret_cast<uv_handle_t*>(stream));
  if (nread == 0) return;  // EAGAIN: nothing to read after all; normal
  if (nread < 0) {         // UV_EOF (everything read was echoed) or an error
    close_connection(c);
    return;
  }
  const auto length = static_cast<std::size_t>(nread);
  uv_buf_t out = uv_buf_init(buf->base, static_cast<unsigned int>(length));
  const int sent = uv_try_write(stream, &out, 1);
  if (sent > 0) c->server->stats.add_bytes(static_cast<std::size_t>(sent));
  if (sent == nread) return;  // the usual case: echoed at once, buffer free again
  if (sent < 0 && sent != UV_EAGAIN) {
    close_connection(c);
    return;
  }
  // The send buffer is full (UV_EAGAIN) or took part of it: hand the rest to
  // uv_write, which waits for writability, and stop reading until it is done.
  const std::size_t done = sent > 0 ? static_cast<std::size_t>(sent) : 0;
  out = uv_buf_init(buf->base + done, static_cast<unsigned int>(length - done));
  uv_read_stop(stream);
  c->write.data = c;
  c->writing = length - done;
  if (uv_write(&c->write, stream, &out, 1, on_written) != 0) close_connection(c);
}

void on_connection(uv_stream_t* listener, int status) {
  Server* s = static_cast<Server*>(listener->data);
  if (status < 0) {
    echo::log_error("accept: %s", uv_strerror(status));
    return;  // libuv keeps listening
  }
  // A yardstick, not a lesson: running out of memory here ends the process.
  auto* c = new Connection();
  // Not zeroed, like the stages' buffers: pages never written need not be resident.
  c->buffer = std::make_unique_for_overwrite<char[]>(s->options.buffer_size);
  c->server = s;
  uv_tcp_init(s->loop, &c->handle);
  c->handle.data = c;  // marks a connection for on_signal
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->handle);
  if (uv_accept(listener, stream) != 0) {
    close_connection(c);
    return;
  }
  s->stats.add_connection();
  echo::log_info("accepted a client");
  if (uv_read_start(stream, on_alloc, on_read) != 0) close_connection(c);
}

// SIGINT/SIGTERM: close every handle (listener, connections, the signal watchers);
// uv_run returns once they are all closed.
void on_signal(uv_signal_t* signal, int) {
  uv_walk(
      signal->loop,
      [](uv_handle_t* handle, void*) {
        if (uv_is_closing(handle)) return;
        if (handle->data == handle) {
          uv_close(handle, on_closed);  // a connection: its memory goes too
        } else {
          uv_close(handle, nullptr);
        }
      },
      nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  peers::Start start = peers::start_or_exit(argc, argv, kAbout);
  const echo::Options& options = start.options;
  echo::Fd& fd = start.listener;

  uv_loop_t* loop = uv_default_loop();
  echo::Stats stats;
  Server server{loop, options, stats};
  uv_tcp_t listener;
  uv_tcp_init(loop, &listener);
  listener.data = &server;
  int rc = uv_tcp_open(&listener, fd.release());
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), SOMAXCONN, on_connection);
  }
  if (rc != 0) {
    echo::log_error("uv_listen: %s", uv_strerror(rc));
    return 1;
  }
  uv_signal_t sigint, sigterm;
  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigterm);
  sigint.data = sigterm.data = &server;
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);

  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  echo::print_summary(stats);
  return 0;
}
