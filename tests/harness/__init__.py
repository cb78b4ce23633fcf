"""The test harness: real stacks started through the product's own launcher, real clients."""
