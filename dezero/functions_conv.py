"""The convolution family, importable as the book does: ``import dezero.functions_conv``.

Everything here lives in dezero.functions.conv and is also exported by dezero.functions.
"""

from dezero.functions.conv import *  # noqa: F403
from dezero.functions.conv import __all__  # noqa: F401
