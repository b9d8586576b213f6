// csrc/cpu/samplers.hpp - the CPU backend of kexue::samplers (internal).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>

#include "kexue/samplers.hpp"

namespace kexue {
namespace cpu {

/// Progress of a built-in-target run, whose chains advance on several
/// threads at once: tiles add (chains x steps) as they go, and each time the
/// average over the C chains passes a whole step, report(done, T) is called
/// (serialised; from whichever thread got there).
class StepProgress {
 public:
  StepProgress(std::int64_t C, std::int64_t T,
               const std::function<void(std::int64_t, std::int64_t)>& report)
      : C_(C), T_(T), report_(report) {}
  void add(std::int64_t chains, std::int64_t steps) {
    const std::int64_t now = chain_steps_.fetch_add(chains * steps) + chains * steps;
    const std::int64_t done = C_ > 0 ? now / C_ : T_;
    std::lock_guard<std::mutex> lk(m_);
    if (done > reported_) {
      reported_ = done;
      report_(done, T_);
    }
  }

 private:
  std::int64_t C_, T_;
  const std::function<void(std::int64_t, std::int64_t)>& report_;
  std::atomic<std::int64_t> chain_steps_{0};
  std::mutex m_;
  std::int64_t reported_ = 0;
};

struct MetropolisPlan {
  const char* op = "samplers.metropolis";  ///< for errors: the function ...
  const char* what = "target";             ///< ... and what it calls the density
  const samplers::Target* target = nullptr;
  const samplers::MetropolisOptions* opt = nullptr;
  std::int64_t C = 0, D = 0, n_steps = 0, S = 0;
  std::uint64_t seed = 0;
  const double* x0 = nullptr;  ///< [C,D]
  double* samples = nullptr;   ///< [C,S,D]
  double* logp = nullptr;      ///< [C,S]
  double* accept_rate = nullptr;
  double* step_out = nullptr;
  // annealing: temperature of each step (null: 1), the best state seen
  const double* temp = nullptr;
  double* best_x = nullptr;   ///< [C,D]
  double* best_lp = nullptr;  ///< [C]
  StepProgress* progress = nullptr;  ///< built-in targets, when opt->progress is set
};

struct SpinAnnealPlan {
  std::int64_t C = 0, N = 0, T = 0;
  const double* J = nullptr;  ///< [N,N]
  const double* h = nullptr;  ///< [N]
  const double* temp = nullptr;
  std::uint64_t seed = 0;
  std::int64_t chain_offset = 0;
  std::int8_t* spins = nullptr;  ///< [C,N] in/out
  std::int8_t* best = nullptr;
  double* best_energy = nullptr;
  double* energy = nullptr;  ///< [C,T]
};

struct GibbsPlan {
  const std::function<void(const std::int64_t*, std::int64_t, std::int64_t, std::int64_t,
                           std::int64_t, double*)>* fn = nullptr;
  std::int64_t C = 0, N = 0, S = 0, n_sweeps = 0, record_every = 1, chain_offset = 0;
  bool random_scan = false;
  std::uint64_t seed = 0;
  const std::int64_t* x0 = nullptr;
  std::int64_t* samples = nullptr;  ///< [C,R,N]
};

struct LatticePlan {
  const samplers::LatticeOptions* opt = nullptr;
  std::int64_t C = 0, H = 0, W = 0;
  std::int64_t q = 0;  ///< 0: Ising (+-1); else Potts states 0..q-1
  std::int8_t* spins = nullptr;
  double* mag = nullptr;
  double* energy = nullptr;
};

void sampler_metropolis(const MetropolisPlan& p);
void sampler_lattice(const LatticePlan& p);
void sampler_anneal_spins(const SpinAnnealPlan& p);
void sampler_gibbs(const GibbsPlan& p);

}  // namespace cpu
}  // namespace kexue
