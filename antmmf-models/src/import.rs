//! import (in progress).
