"""Unit constants. Inside dcsim everything is SI (seconds, bytes, FLOP, bytes/s);
files and the CLI use human units whose names say so (`memory_gb`, `bandwidth_gbyte_s`)
and are converted once, at the edge, with these factors."""

GIGA = 1e9
TERA = 1e12

GB = 1e9  # bytes in a (decimal) gigabyte, as vendors quote memory and bandwidth
GIB = 2**30  # bytes in a gibibyte
GBIT = 1e9  # bits in a gigabit

# bytes per element of each training dtype
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}
