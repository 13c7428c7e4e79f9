package com.amazonaws.services.lambda.runtime;

/** A handler whose event and result are mapped from and to JSON by the runtime. */
public interface RequestHandler<I, O> {
    O handleRequest(I input, Context context);
}
