// csrc/cpu/parallel.cpp - the persistent thread pool behind parallel_for.
//
// One pool for the process; workers sleep on a condition variable between
// calls. A call publishes a job (n chunks of `grain` items), the workers and
// the caller claim chunk numbers from an atomic counter, and the caller
// waits until every claimed chunk is done. Chunk boundaries depend only on
// (n, grain), which is what makes results independent of the thread count.
// Exceptions are caught per chunk and the one of the lowest failing chunk is
// rethrown in the caller, as a serial loop would: chunks above a failed one
// are skipped, chunks below it still run (so the choice never depends on
// timing or the thread count).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <pthread.h>

#include "kexue/core/error.hpp"
#include "kexue/core/parallel.hpp"

namespace kexue {
namespace {

thread_local bool t_in_pool_task = false;

int default_threads() {
  if (const char* env = std::getenv("KEXUE_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

class Pool {
 public:
  explicit Pool(int nthreads) { resize(nthreads); }
  ~Pool() { stop(); }

  int size() const { return nthreads_; }

  void resize(int nthreads) {
    stop();
    nthreads_ = nthreads;
    stopping_ = false;
    for (int i = 1; i < nthreads; ++i) workers_.emplace_back([this] { worker(); });
  }

  // Runs fn over chunks; the caller must hold run_mutex_.
  void run(std::int64_t nchunks, std::int64_t n, std::int64_t grain,
           const std::function<void(std::int64_t, std::int64_t)>& fn) {
    errors_.assign(static_cast<std::size_t>(nchunks), nullptr);
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      n_ = n;
      grain_ = grain;
      nchunks_ = nchunks;
      next_.store(0);
      first_failed_.store(nchunks);
      pending_ = nchunks;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
    lk.unlock();
    for (auto& e : errors_)
      if (e) std::rethrow_exception(e);
  }

  std::mutex run_mutex_;

 private:
  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void worker() {
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
      }
      work();
    }
  }

  void work() {
    t_in_pool_task = true;
    std::int64_t finished = 0;
    for (;;) {
      const std::int64_t c = next_.fetch_add(1);
      if (c >= nchunks_) break;
      if (c < first_failed_.load()) {
        const std::int64_t b = c * grain_;
        const std::int64_t e = std::min(n_, b + grain_);
        try {
          (*fn_)(b, e);
        } catch (...) {
          errors_[static_cast<std::size_t>(c)] = std::current_exception();
          std::int64_t cur = first_failed_.load();
          while (c < cur && !first_failed_.compare_exchange_weak(cur, c)) {
          }
        }
      }
      ++finished;
    }
    t_in_pool_task = false;
    if (finished > 0) {
      std::lock_guard<std::mutex> lk(m_);
      pending_ -= finished;
      if (pending_ == 0) done_cv_.notify_all();
    }
  }

  int nthreads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  bool stopping_ = false;
  std::uint64_t generation_ = 0;
  const std::function<void(std::int64_t, std::int64_t)>* fn_ = nullptr;
  std::int64_t n_ = 0, grain_ = 1, nchunks_ = 0, pending_ = 0;
  std::atomic<std::int64_t> next_{0};
  std::atomic<std::int64_t> first_failed_{0};
  std::vector<std::exception_ptr> errors_;
};

std::atomic<int> g_threads{0};
Pool* g_pool = nullptr;  // leaked on purpose: no join at static destruction
std::mutex g_pool_mutex;

void forget_pool_after_fork() {
  // The child has none of the parent's threads: start a fresh pool lazily.
  g_pool = nullptr;
  new (&g_pool_mutex) std::mutex();
}

int threads() {
  int n = g_threads.load();
  if (n == 0) {
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, forget_pool_after_fork); });
    int expected = 0;
    g_threads.compare_exchange_strong(expected, default_threads());
    n = g_threads.load();
  }
  return n;
}

}  // namespace

int get_num_threads() { return threads(); }

void set_num_threads(int n) {
  if (n < 1) fail(ErrorKind::Value, "set_num_threads", "n must be >= 1; got ", n);
  threads();
  g_threads.store(n);
}

void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const std::int64_t nchunks = (n + grain - 1) / grain;
  const int nt = threads();
  auto serial = [&] {
    // Same chunks, same order of exception choice as the pool.
    for (std::int64_t c = 0; c < nchunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
  };
  if (nt <= 1 || nchunks <= 1 || t_in_pool_task) return serial();
  std::unique_lock<std::mutex> pool_lock(g_pool_mutex, std::try_to_lock);
  if (!pool_lock.owns_lock()) return serial();  // another thread is using the pool
  if (g_pool == nullptr) g_pool = new Pool(nt);
  if (g_pool->size() != nt) g_pool->resize(nt);
  g_pool->run(nchunks, n, grain, fn);
}

}  // namespace kexue
