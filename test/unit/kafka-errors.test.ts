import { MultipleErrors, ResponseError } from '@platformatic/kafka';
import { KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { isUnknownMember, kafkaErrorText } from '../../log/kafka-errors.ts';

describe('Kafka errors as a log line says them', () => {
  it('names the broker\'s codes under a response error (a commit during a rebalance), each once', () => {
    // OffsetCommit (api 8) answered REBALANCE_IN_PROGRESS (27) for two partitions.
    const err = new ResponseError(8, 9, { '/topics/0/partitions/0': [27, null], '/topics/0/partitions/1': [27, null] }, {});
    expect(kafkaErrorText(err)).toBe('Received response with error while executing API OffsetCommit(v9) (REBALANCE_IN_PROGRESS)');
    expect(kafkaErrorText(new Error('connect ECONNREFUSED 127.0.0.1:9092'))).toBe('connect ECONNREFUSED 127.0.0.1:9092');
  });

  it('tells a member already gone from the group (another host removed it first), on either client', () => {
    const removed = new MultipleErrors('Removing members from consumer group failed.', [new ResponseError(13, 3, { '/members/0': [25, null] }, {})]);
    expect(isUnknownMember(removed)).toBe(true);
    expect(kafkaErrorText(removed)).toBe('Removing members from consumer group failed. (UNKNOWN_MEMBER_ID)');
    expect(isUnknownMember(new KafkaJSProtocolError({ type: 'UNKNOWN_MEMBER_ID', code: 25, retriable: false, message: 'The coordinator is not aware of this member' } as never))).toBe(true);
    expect(isUnknownMember(new ResponseError(13, 3, { '/members/0': [16, null] }, {}))).toBe(false);
  });
});
