/** The API's types, from the one definition the stream function's routes are typed with. */
export type {
  AnswerMetadata,
  FeedbackBody,
  MessageFeedback,
  SessionPage,
  SessionSummary,
  UsageSummary,
} from '../../functions/contracts/api.ts';
