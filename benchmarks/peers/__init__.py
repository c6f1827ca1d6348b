"""servcore side by side with other Python job libraries, measured the same way.

Run it with ``benchmarks/peers/run.sh`` (see README.md beside this file). The
package is imported from ``benchmarks/`` (``PYTHONPATH=benchmarks``) by the
harness, the enqueue client and every worker process.
"""
