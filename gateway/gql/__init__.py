"""The GraphQL face of the gateway (strawberry): types, inputs, resolvers, limits and error masking."""
