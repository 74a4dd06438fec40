// A batch: every packet of (buffer, descriptors) through its op, in one call (docs/engine.md §1).
// EngineCore is the whole engine without Node-API, so fuzzers and plain C++ programs can drive it.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include "engine/abi.h"
#include "sa/successors.h"
#include "sa/table.h"

namespace mipsec {

struct BatchView {
  uint8_t* buffer;
  size_t buffer_len;
  uint32_t* desc;  // count × kDescWords words
  size_t count;
  size_t slot_size;
};

struct Counters {
  std::atomic<uint64_t> value[kCounterSlots] = {};
};
static_assert(sizeof(std::atomic<uint64_t>) == sizeof(uint64_t), "counters are read from JS as a BigUint64Array");

// Runs the batch against one table snapshot; adds to local (not shared) counters.
void process_batch(const Tables& t, const BatchView& b, uint64_t* counters);

class EngineCore {
 public:
  EngineCore();
  SaTable table;
  Successors successors{table};
  // Shared with whoever exposes them (the JS ArrayBuffer keeps them alive after the engine is gone).
  std::shared_ptr<Counters> counters;
  // Runs the batch on one table snapshot (the current one by default) and adds its counters to the shared ones.
  void process(const BatchView& b) { process(b, *table.snapshot()); }
  void process(const BatchView& b, const Tables& snapshot);
};

}  // namespace mipsec
