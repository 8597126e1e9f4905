// The simulated hypervisor's shared state: the files under the sim directory.
//
//   <sim dir>/config              "gntalloc_limit=N" (simInit)
//   <sim dir>/seq                 last process token handed out (flock'd while bumped)
//   <sim dir>/procs/<token>       one per process using the sim: "pid domid", held
//                                 with flock(LOCK_EX) for the process's lifetime, so
//                                 whoever can take the lock knows the owner is dead
//   <sim dir>/dom<D>/lock         flock: serialises every change to domain D's state
//   <sim dir>/dom<D>/table        D's grant table: GrantEntryV1[kSimTableEntries]
//   <sim dir>/dom<D>/shadow       the hypervisor's and D's kernel bookkeeping (below)
//   <sim dir>/dom<D>/frames       D's memory: page N of the file is frame N (sparse)
//
// Every process maps these files MAP_SHARED. The per-entry shadow is the one
// source of truth; the header's counters and the frame bitmap are derived from
// it and rebuilt when a process died in the middle of an update (`dirty`).
#pragma once

#include <cstddef>
#include <cstdint>

#include "abi/abi.h"

namespace xsw::sim {

// Xen's default max_grant_frames (64) of v1 entries.
constexpr uint32_t kSimTableEntries = 64 * (kPageSize / sizeof(GrantEntryV1));
constexpr uint32_t kSimMaxFrames = kSimTableEntries;
constexpr uint32_t kDefaultGntallocLimit = 1024;  // gntalloc's `limit` module parameter
constexpr uint32_t kShadowMagic = 0x58535753;     // "XSWS"
constexpr uint32_t kShadowVersion = 1;

// Processes (of any domain) that may map one grant at the same time.
constexpr int kMapperSlots = 4;

struct SimHeader {
  uint32_t magic;
  uint32_t version;
  uint32_t dirty;        // set while a change is in progress; found set = its writer died
  uint32_t used_pages;   // entries not free (granted or ending): counts against the limit
  uint32_t frame_count;  // size of the frames file, in frames
  uint32_t destroyed;    // simDestroyDomain ran; removed once nothing is mapped
  uint32_t next_ref;     // where the next search for a free entry starts
  uint32_t reserved[9];
};

enum EntryState : uint8_t {
  kEntryFree = 0,
  kEntryGranted = 1,  // owned by a live (or not yet reaped) allocating process
  kEntryEnding = 2,   // freed by its owner while still mapped: released at the last unmap
};

struct SimMapperSlot {
  uint32_t token;  // mapping process, 0 = slot unused
  uint16_t maps;   // its mappings of this entry
  uint16_t writable_maps;
};

struct SimEntry {
  uint32_t owner;  // token of the allocating process; 0 once ended
  uint32_t frame;  // the frame this entry grants (the table's copy is guest memory)
  uint8_t state;   // EntryState
  uint8_t notify;  // 1: clear the byte at notify_offset when the grant ends
  uint16_t notify_offset;
  uint32_t pad;
  SimMapperSlot slots[kMapperSlots];
};

// shadow file = header page, entries, frame bitmap.
constexpr size_t kShadowEntriesOffset = kPageSize;
constexpr size_t kShadowBitmapOffset =
    AlignUp(kShadowEntriesOffset + sizeof(SimEntry) * kSimTableEntries, kPageSize);
constexpr size_t kShadowSize = AlignUp(kShadowBitmapOffset + kSimMaxFrames / 8, kPageSize);
constexpr size_t kTableSize = sizeof(GrantEntryV1) * kSimTableEntries;

static_assert(sizeof(SimHeader) == 64, "sim header");
static_assert(sizeof(SimMapperSlot) == 8 && sizeof(SimEntry) == 48, "sim entry");

}  // namespace xsw::sim
