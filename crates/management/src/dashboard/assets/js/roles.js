// What the logged-in user's tags let it see and do, as RabbitMQ's UI decides: administrator
// implies every other tag, monitoring and policymaker imply management. Pages and forms that
// need a tag the user lacks are not shown (the API would refuse them anyway).

import { tags } from './api.js';

const IMPLIES = {
  administrator: ['administrator', 'monitoring', 'policymaker', 'management'],
  monitoring: ['monitoring', 'management'],
  policymaker: ['policymaker', 'management'],
  management: ['management'],
};

/** Whether the user has `role` ('administrator', 'monitoring', 'policymaker', 'management'). */
export function can(role) {
  if (!role) return true;
  return tags().some((t) => (IMPLIES[t] || []).includes(role));
}

/** The sentence shown where something needs a tag the user lacks. */
export const needs = (role, what = 'This page') =>
  `${what} needs the ${role === 'administrator' ? role : `${role} or administrator`} tag (yours: ${tags().join(', ') || 'none'}).`;
