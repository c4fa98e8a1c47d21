"""PyTorch's dtype names (`tt.float32`, `tt.float`, `tt.long`, ...) for the NumPy dtypes TinyTorch uses.

A TinyTorch tensor holds a NumPy array, so its dtypes ARE NumPy's: `tt.float32 is np.float32`, and
`x.dtype == tt.float32` compares a NumPy dtype with a NumPy type, as NumPy allows. The names that
shadow Python's builtins (`float`, `int`, `bool`) live in this file of names only, so no code here
needs the builtins.
"""
import numpy as np

float16 = half = np.float16
float32 = float = np.float32
float64 = double = np.float64
int8 = np.int8
uint8 = np.uint8
int16 = short = np.int16
int32 = int = np.int32
int64 = long = np.int64
bool = np.bool_
