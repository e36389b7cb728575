// The machine's floor for FGBI's hot steps, measured in plain C inside this repository (`fgbi bench floor`;
// the engine, tracker and pause benchmarks run it first in the same run and report ratios to it).
#pragma once
#include <stddef.h>

/// Receives one figure: its metric name (for example `scan_reprotect_16384_of_262144_pages_ms`), value and unit.
typedef void (*CFloor_report)(void *context, const char *metric, double value, const char *unit);

/// Measures, over a region of `mib` MiB (at least 1): XXH3 on every 64-byte block and memcpy, on one thread
/// and split over two; copying and rehashing 1,024 to 51,200 scattered written pages; LZ4 on
/// half-compressible data; and, with async
/// userfaultfd write-protection and PAGEMAP_SCAN, the first write to a protected page and the collection
/// and re-protection of 1,024 pages, 16,384 pages and the whole region. Each figure goes to `report` as soon
/// as it is measured. Returns 0; or -errno when the region cannot be mapped (nothing measured), or when
/// the tracker figures cannot be measured (the others were), with `*failed_step` naming the step.
int CFloor_measure(size_t mib, CFloor_report report, void *context, const char **failed_step);
